package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
)

// defaultReadyTimeout bounds server start-up (including recovery of the
// file store) when ctx has no deadline.
const defaultReadyTimeout = 30 * time.Second

// EmbeddedOptions configures an embedded NATS server.
type EmbeddedOptions struct {
	// StoreDir is the JetStream file store directory (required).
	StoreDir string
	// SyncAlways fsyncs the store before every acknowledgement
	// (--durability=strict): acknowledged messages also survive an OS crash
	// or power loss.
	SyncAlways bool
	// Port is the client TCP port: 0 opens no listener (clients connect in
	// process with Connect), a negative value picks a random free port.
	Port int
	// Host is the listen address when Port != 0 (default 127.0.0.1).
	Host string
	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger
}

// Server is a NATS server with JetStream running inside this process.
//
// Durability: with SyncAlways false the file store writes every message to
// its block file with write(2) before the stream sends the PubAck (for R1
// streams in the default persist mode AsyncFlush is false, so the store
// flushes in place), and fsyncs only every SyncInterval (2 minutes by
// default). An acknowledged message is therefore in the kernel's page cache
// and survives kill -9 of the process (TestKillNineKeepsAckedMessages checks
// this); only an OS crash or power loss can lose the last interval.
// SyncAlways also fsyncs before every acknowledgement.
type Server struct {
	ns     *server.Server
	listen bool
	once   sync.Once
}

// StartEmbedded starts an embedded JetStream server and waits until it
// accepts connections (bounded by ctx's deadline, or 30s).
func StartEmbedded(ctx context.Context, opts EmbeddedOptions) (*Server, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("start nats: store dir is required")
	}
	ns, err := server.NewServer(serverOptions(opts))
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sl := &serverLogger{l: logger.With("component", "nats-server")}
	ns.SetLogger(sl, false, false)

	s := &Server{ns: ns, listen: opts.Port != 0}
	if err := s.start(ctx, sl); err != nil {
		s.Shutdown()
		return nil, fmt.Errorf("start nats: %w", err)
	}
	return s, nil
}

func serverOptions(opts EmbeddedOptions) *server.Options {
	o := &server.Options{
		ServerName:             "pathstats",
		JetStream:              true,
		StoreDir:               opts.StoreDir,
		SyncAlways:             opts.SyncAlways,
		NoSigs:                 true,
		DisableJetStreamBanner: true,
	}
	switch {
	case opts.Port == 0:
		o.DontListen = true
	case opts.Port < 0:
		o.Port = server.RANDOM_PORT
	default:
		o.Port = opts.Port
	}
	o.Host = opts.Host
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	return o
}

// start runs the server's start-up and checks it is ready with JetStream.
func (s *Server) start(ctx context.Context, sl *serverLogger) error {
	done := make(chan struct{})
	go func() {
		s.ns.Start()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.ns.Shutdown()
		<-done
		return ctx.Err()
	}
	timeout := defaultReadyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	if fatal := sl.fatal(); fatal != "" {
		return errors.New(fatal)
	}
	if !s.ns.ReadyForConnections(timeout) {
		return fmt.Errorf("not ready for connections after %s", timeout)
	}
	if !s.ns.JetStreamEnabled() {
		return errors.New("jetstream not enabled")
	}
	return nil
}

// ClientURL is the nats:// URL of the TCP listener, or "" when the server
// only accepts in-process connections.
func (s *Server) ClientURL() string {
	if !s.listen {
		return ""
	}
	return s.ns.ClientURL()
}

// Connect opens an in-process client connection to the server.
func (s *Server) Connect() (*natsgo.Conn, error) {
	nc, err := natsgo.Connect("",
		natsgo.InProcessServer(s.ns),
		natsgo.Name("pathstats"),
		// Fail fast instead of buffering while the server is gone.
		natsgo.ReconnectBufSize(-1),
	)
	if err != nil {
		return nil, fmt.Errorf("connect embedded nats: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server and waits until it has stopped. It is safe to
// call more than once.
func (s *Server) Shutdown() {
	s.once.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	})
}

// serverLogger adapts slog to the server's Logger and remembers the first
// fatal message (the server does not exit the process when embedded).
type serverLogger struct {
	l  *slog.Logger
	mu sync.Mutex
	fa string
}

func (sl *serverLogger) fatal() string {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return sl.fa
}

func (sl *serverLogger) Noticef(format string, v ...any) { sl.l.Info(fmt.Sprintf(format, v...)) }
func (sl *serverLogger) Warnf(format string, v ...any)   { sl.l.Warn(fmt.Sprintf(format, v...)) }
func (sl *serverLogger) Errorf(format string, v ...any)  { sl.l.Error(fmt.Sprintf(format, v...)) }
func (sl *serverLogger) Debugf(format string, v ...any)  { sl.l.Debug(fmt.Sprintf(format, v...)) }
func (sl *serverLogger) Tracef(format string, v ...any)  { sl.l.Debug(fmt.Sprintf(format, v...)) }

func (sl *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	sl.l.Error(msg, "fatal", true)
	sl.mu.Lock()
	if sl.fa == "" {
		sl.fa = msg
	}
	sl.mu.Unlock()
}
