package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pathstats/pathstats/internal/datadir"
)

// addrFileName is the file in the data dir that tells tools where a running
// server listens; it is removed on clean shutdown.
const addrFileName = "serve.json"

// claimDataDir takes the data dir's lock before any backend opens it, drops
// a serve.json left by a crashed predecessor, and settles the node id.
func (s *server) claimDataDir() error {
	lock, err := datadir.Acquire(s.cfg.DataDir)
	if err != nil {
		return err
	}
	s.lock = lock
	if err := os.Remove(filepath.Join(s.cfg.DataDir, addrFileName)); err == nil {
		s.log.Info("removed serve.json of a server that did not stop cleanly")
	}
	return s.loadNodeID()
}

// loadNodeID sets s.nodeID from --node-id, else from <data-dir>/node-id.
func (s *server) loadNodeID() error {
	if s.cfg.NodeID != "" {
		if err := datadir.ValidNodeID(s.cfg.NodeID); err != nil {
			return fmt.Errorf("--node-id: %w", err)
		}
		s.nodeID = s.cfg.NodeID
		return nil
	}
	id, created, err := datadir.NodeID(s.cfg.DataDir)
	if err != nil {
		return err
	}
	s.nodeID = id
	switch {
	case created:
		s.log.Info("node id generated", "nodeId", id, "file", filepath.Join(s.cfg.DataDir, datadir.NodeIDFile))
	case !strings.HasPrefix(id, datadir.HostPrefix()+"-"):
		s.log.Warn("node id was made on another host: if this data dir is a copy, give it its own id (delete the node-id file or set --node-id) so two nodes never share one",
			"nodeId", id, "host", datadir.HostPrefix())
	}
	return nil
}

// releaseDataDir removes serve.json and releases the lock; it does nothing
// when the lock was never taken (the dir belongs to another process).
func (s *server) releaseDataDir() {
	if s.lock == nil {
		return
	}
	if err := os.Remove(filepath.Join(s.cfg.DataDir, addrFileName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("remove serve.json", "err", err)
	}
	if err := s.lock.Close(); err != nil {
		s.log.Warn("release data dir lock", "err", err)
	}
	s.lock = nil
}

// runningServer reads serve.json and checks that the server it names still
// runs: its pid exists and it holds the data dir's lock.
func runningServer(dataDir string) (*addrFile, error) {
	af, err := readAddrFile(dataDir)
	if err != nil {
		return nil, err
	}
	if stale(dataDir, af.PID) {
		return nil, fmt.Errorf("no server running (stale %s from pid %d in %s)", addrFileName, af.PID, dataDir)
	}
	return af, nil
}

// stale reports a serve.json whose server is gone: its pid does not exist,
// or nothing holds the data dir lock (the pid was reused). Without a lock
// file (a server of an older release) only the pid counts.
func stale(dataDir string, pid int) bool {
	if !datadir.ProcessAlive(pid) {
		return true
	}
	held, err := datadir.InUse(dataDir)
	return err == nil && !held
}
