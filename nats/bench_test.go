package nats

import (
	"fmt"
	"testing"
	"time"
)

func benchQueue(b *testing.B, syncAlways bool) *Queue {
	s := startServer(b, EmbeddedOptions{StoreDir: b.TempDir(), SyncAlways: syncAlways})
	return openQueue(b, connect(b, s), testConfig(b))
}

// BenchmarkPublish measures one synchronous publish (PubAck) of a 1 KiB
// batch on the embedded server over an in-process connection.
func BenchmarkPublish(b *testing.B) {
	for _, strict := range []bool{false, true} {
		b.Run(fmt.Sprintf("syncAlways=%v", strict), func(b *testing.B) {
			q := benchQueue(b, strict)
			data := make([]byte, 1024)
			ctx := testCtx(b)
			b.SetBytes(int64(len(data)))
			i := 0
			for b.Loop() {
				if err := q.Publish(ctx, fmt.Sprintf("b%d", i), data); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkFetchAck measures fetching (batches of 100) and acknowledging
// messages; ns/op is per message.
func BenchmarkFetchAck(b *testing.B) {
	q := benchQueue(b, false)
	ctx := testCtx(b)
	data := make([]byte, 1024)
	for i := range b.N {
		if err := q.Publish(ctx, fmt.Sprintf("b%d", i), data); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for n := 0; n < b.N; {
		msgs, err := q.Fetch(ctx, 100, time.Second)
		if err != nil || len(msgs) == 0 {
			b.Fatalf("fetch after %d: %d messages, %v", n, len(msgs), err)
		}
		for _, m := range msgs {
			if err := m.Ack(); err != nil {
				b.Fatal(err)
			}
		}
		n += len(msgs)
	}
}
