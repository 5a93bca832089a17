package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/gateway"
	"github.com/pathstats/pathstats/internal/testutil"
	"github.com/pathstats/pathstats/recorder"
)

// BenchmarkGatewayRecording compares the gateway with recording off and on
// (the real recorder feeding the real embedded pipeline), over real HTTP on
// loopback, in one run. The requirement: on ≥ 95% of off's requests/s.
func BenchmarkGatewayRecording(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	route, err := gateway.DefaultRoute(upstream.URL)
	if err != nil {
		b.Fatal(err)
	}
	p, err := openPipeline(testutil.Context(b), b.TempDir(), recorder.Config{FlushInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer p.close()
	for _, bc := range []struct {
		name string
		rec  pathstats.Recorder
	}{{"record=off", nil}, {"record=on", p.rec}} {
		h, err := gateway.NewProxy([]gateway.Route{route}, bc.rec, gateway.Options{})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(h)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		b.Run(bc.name, func(b *testing.B) {
			var seq atomic.Int64
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := seq.Add(1)
					resp, err := client.Get(fmt.Sprintf("%s/api/items/%d/detail", srv.URL, n%1000))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
		srv.Close()
	}
}
