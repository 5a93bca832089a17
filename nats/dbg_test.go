package nats

import (
	"testing"
)

func TestDbgCreateDelete(t *testing.T) {
	s := startServer(t, EmbeddedOptions{StoreDir: t.TempDir(), Port: -1})
	for i := 0; i < 300; i++ {
		q, err := OpenURL(testCtx(t), s.ClientURL(), testConfig(t))
		if err != nil {
			t.Fatalf("iter %d: %v", i, err)
		}
		publishT(t, q, "a", "b")
		if err := q.js.DeleteStream(testCtx(t), q.cfg.Stream); err != nil {
			t.Fatal(err)
		}
		q.Close()
	}
}
