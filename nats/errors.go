package nats

import (
	"context"
	"errors"
	"fmt"
	"net"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pathstats/pathstats"
)

// classify wraps err with pathstats.ErrUnavailable when it means the server
// (or JetStream) cannot be reached or cannot take the request right now.
func classify(err error) error {
	if err == nil || errors.Is(err, pathstats.ErrUnavailable) {
		return err
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", pathstats.ErrUnavailable, err)
	}
	return err
}

var unavailableErrs = []error{
	context.DeadlineExceeded,
	natsgo.ErrTimeout,
	natsgo.ErrNoResponders,
	natsgo.ErrNoServers,
	natsgo.ErrConnectionClosed,
	natsgo.ErrConnectionDraining,
	natsgo.ErrConnectionReconnecting,
	natsgo.ErrDisconnected,
	natsgo.ErrReconnectBufExceeded,
	natsgo.ErrStaleConnection,
	jetstream.ErrNoStreamResponse,
	jetstream.ErrJetStreamNotEnabled,
	jetstream.ErrJetStreamNotEnabledForAccount,
}

func unavailable(err error) bool {
	for _, target := range unavailableErrs {
		if errors.Is(err, target) {
			return true
		}
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	// A 503 from the JetStream API: store failure (e.g. stream full),
	// insufficient resources, no leader.
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503
	}
	return false
}
