package natscluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// errPortInUse marks a node that exited because one of its ports was
// taken.
var errPortInUse = errors.New("port already in use")

// logTail is how much of a node's log an error quotes.
const logTail = 2000

// node is one nats-server process and the ports and store it keeps across
// restarts.
type node struct {
	name        string
	clientPort  int
	clusterPort int
	httpPort    int
	storeDir    string
	logPath     string
	confPath    string

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when the current process exited
	logStart int64         // log offset where the current process began
}

func (nd *node) url() string { return "nats://127.0.0.1:" + strconv.Itoa(nd.clientPort) }

// writeConfig writes the node's configuration file, with routes to every
// other node of the cluster.
func (nd *node) writeConfig(cluster string, all []*node) error {
	var routes []string
	for _, o := range all {
		if o != nd {
			routes = append(routes, strconv.Quote("nats-route://127.0.0.1:"+strconv.Itoa(o.clusterPort)))
		}
	}
	conf := fmt.Sprintf(`server_name: %q
listen: "127.0.0.1:%d"
http: "127.0.0.1:%d"
jetstream {
  store_dir: %q
  max_memory_store: 256MB
  max_file_store: 2GB
}
cluster {
  name: %q
  listen: "127.0.0.1:%d"
  routes: [%s]
}
`, nd.name, nd.clientPort, nd.httpPort, nd.storeDir, cluster, nd.clusterPort, strings.Join(routes, ", "))
	nd.confPath = filepath.Join(filepath.Dir(nd.logPath), nd.name+".conf")
	if err := os.MkdirAll(nd.storeDir, 0o755); err != nil {
		return fmt.Errorf("%s: store dir: %w", nd.name, err)
	}
	if err := os.WriteFile(nd.confPath, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("%s: write config: %w", nd.name, err)
	}
	return nil
}

// start starts the process; its output is appended to the node's log.
func (nd *node) start(bin string) error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.done != nil && !closed(nd.done) {
		return fmt.Errorf("%s: already running", nd.name)
	}
	logf, err := os.OpenFile(nd.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: open log: %w", nd.name, err)
	}
	st, err := logf.Stat()
	if err != nil {
		logf.Close()
		return fmt.Errorf("%s: stat log: %w", nd.name, err)
	}
	cmd := exec.Command(bin, "-c", nd.confPath)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: start %s: %w", nd.name, bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	nd.cmd, nd.done, nd.logStart = cmd, done, st.Size()
	return nil
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// running tells whether the process is alive.
func (nd *node) running() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.done != nil && !closed(nd.done)
}

// kill sends SIGKILL and waits for the exit; a stopped node is left alone.
func (nd *node) kill() error {
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	nd.mu.Unlock()
	if done == nil || closed(done) {
		return nil
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("sigkill pid %d: %w", cmd.Process.Pid, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("pid %d still running 10s after SIGKILL", cmd.Process.Pid)
	}
}

// waitHealthy polls the monitoring /healthz endpoint, which answers 200
// once JetStream knows its meta leader and this node's streams and
// consumers are current. A process that exits fails at once.
func (nd *node) waitHealthy(ctx context.Context) error {
	nd.mu.Lock()
	done := nd.done
	nd.mu.Unlock()
	client := &http.Client{Timeout: time.Second}
	url := "http://127.0.0.1:" + strconv.Itoa(nd.httpPort) + "/healthz"
	last := "no answer"
	for {
		select {
		case <-done:
			return nd.exitError()
		default:
		}
		status, err := healthz(ctx, client, url)
		if err == nil && status == http.StatusOK {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = "status " + strconv.Itoa(status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy (%s): %w\n%s", nd.name, last, ctx.Err(), nd.tail())
		case <-done:
			return nd.exitError()
		case <-time.After(pollInterval):
		}
	}
}

func healthz(ctx context.Context, client *http.Client, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// exitError describes a process that exited on its own, marking a port
// conflict with errPortInUse.
func (nd *node) exitError() error {
	tail := nd.tail()
	err := fmt.Errorf("%s exited (%s)", nd.name, nd.cmd.ProcessState)
	if strings.Contains(tail, "address already in use") {
		err = fmt.Errorf("%w: %w", err, errPortInUse)
	}
	return fmt.Errorf("%w\n%s", err, tail)
}

// tail is the end of the current process's log.
func (nd *node) tail() string {
	b, err := os.ReadFile(nd.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if nd.logStart <= int64(len(b)) {
		b = b[nd.logStart:]
	}
	if len(b) > logTail {
		b = b[len(b)-logTail:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return "--- " + nd.name + " log ---\n" + string(b)
}
