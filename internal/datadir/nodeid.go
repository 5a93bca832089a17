package datadir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// NodeIDFile is the name of the file inside a data dir that keeps its
// node id.
const NodeIDFile = "node-id"

// MaxNodeIDLen bounds a node id (it is part of every batch id).
const MaxNodeIDLen = 64

// NodeID returns the node id of dir: the one stored in dir/node-id, or a
// new one ("<hostname>-<8 hex>") written there on first use; created says
// which. The id is stable across restarts, so a restarted process re-takes
// the leases its predecessor held. A copy of the data dir carries the same
// id: give the copy its own (delete the file, or run with --node-id).
func NodeID(dir string) (id string, created bool, err error) {
	path := filepath.Join(dir, NodeIDFile)
	data, err := os.ReadFile(path)
	if err == nil {
		id, err := ParseNodeID(data)
		if err != nil {
			return "", false, fmt.Errorf("%s: %w (fix or delete the file)", path, err)
		}
		return id, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("read node id: %w", err)
	}
	id, err = newNodeID()
	if err != nil {
		return "", false, err
	}
	if err := writeFile(path, []byte(id+"\n")); err != nil {
		return "", false, fmt.Errorf("write node id: %w", err)
	}
	return id, true, nil
}

// ParseNodeID reads a node id from the contents of a node-id file (one
// line; surrounding white space is ignored).
func ParseNodeID(data []byte) (string, error) {
	id := strings.TrimSpace(string(data))
	if err := ValidNodeID(id); err != nil {
		return "", err
	}
	return id, nil
}

// ValidNodeID checks a node id: 1 to MaxNodeIDLen characters of
// A-Z a-z 0-9 . _ -, starting with a letter or digit.
func ValidNodeID(id string) error {
	switch {
	case id == "":
		return errors.New("node id is empty")
	case len(id) > MaxNodeIDLen:
		return fmt.Errorf("node id longer than %d characters", MaxNodeIDLen)
	case !isAlnum(id[0]):
		return fmt.Errorf("node id %q must start with a letter or digit", id)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("node id %q: only letters, digits, '.', '_' and '-' are allowed", id)
		}
	}
	return nil
}

// HostPrefix is this machine's host name as a node id prefix: characters
// a node id does not allow become '-', at most 40 characters, "node" when
// the name is unknown.
func HostPrefix() string {
	host, _ := os.Hostname()
	b := []byte(host)
	for i, c := range b {
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			b[i] = '-'
		}
	}
	p := strings.Trim(string(b[:min(len(b), 40)]), ".-_")
	if p == "" {
		return "node"
	}
	return p
}

func newNodeID() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	return HostPrefix() + "-" + hex.EncodeToString(b), nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// writeFile writes data to path through a temporary file and a rename, so
// a crash never leaves half a file.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
