package datadir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNodeIDStable(t *testing.T) {
	dir := t.TempDir()
	id, created, err := NodeID(dir)
	if err != nil || !created {
		t.Fatalf("first NodeID = %q, %v, %v", id, created, err)
	}
	if !strings.HasPrefix(id, HostPrefix()+"-") || len(id) != len(HostPrefix())+9 {
		t.Errorf("id %q, want %s-<8 hex>", id, HostPrefix())
	}
	if err := ValidNodeID(id); err != nil {
		t.Error(err)
	}
	again, created, err := NodeID(dir)
	if err != nil || created || again != id {
		t.Fatalf("second NodeID = %q, %v, %v; want %q, not created", again, created, err, id)
	}
	other, _, err := NodeID(t.TempDir())
	if err != nil || other == id {
		t.Fatalf("another dir got %q (%v), same as %q", other, err, id)
	}
}

func TestNodeIDFileEdited(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, NodeIDFile)
	if err := os.WriteFile(path, []byte("  edge-7.eu_1 \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if id, created, err := NodeID(dir); err != nil || created || id != "edge-7.eu_1" {
		t.Fatalf("NodeID = %q, %v, %v", id, created, err)
	}
	if err := os.WriteFile(path, []byte("bad id\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := NodeID(dir)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "delete") {
		t.Fatalf("NodeID of a bad file: %v", err)
	}
}

func TestValidNodeID(t *testing.T) {
	for id, ok := range map[string]bool{
		"a": true, "node-1": true, "Host.example_2": true, strings.Repeat("x", MaxNodeIDLen): true,
		"": false, "-a": false, ".a": false, "a b": false, "a/b": false, "ä": false,
		strings.Repeat("x", MaxNodeIDLen+1): false, "a\n": false,
	} {
		if err := ValidNodeID(id); (err == nil) != ok {
			t.Errorf("ValidNodeID(%q) = %v, want ok=%v", id, err, ok)
		}
	}
}

func FuzzParseNodeID(f *testing.F) {
	for _, s := range []string{"node-1\n", "  a.b_c \r\n", "", "-x", "a b", "ä", strings.Repeat("y", 70), "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := ParseNodeID(data)
		if err != nil {
			return
		}
		if ValidNodeID(id) != nil || id != strings.TrimSpace(id) || len(id) > MaxNodeIDLen {
			t.Fatalf("accepted %q", id)
		}
		if again, err := ParseNodeID([]byte(id + "\n")); err != nil || again != id {
			t.Fatalf("round trip %q: %q, %v", id, again, err)
		}
	})
}
