// Package s3test runs a real S3-compatible server for tests: versitygw
// with its posix backend on a temporary directory, on a loopback port.
//
// The versitygw binary is named by PATHSTATS_TEST_VERSITYGW (for example
// one built by `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`).
// Tests calling Start skip when it is unset and fail when it is set but the
// server cannot be started.
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// EnvBinary names the environment variable holding the versitygw binary.
const EnvBinary = "PATHSTATS_TEST_VERSITYGW"

// Credentials and region of the test server's root account.
const (
	AccessKey = "pathstats-test-access"
	SecretKey = "pathstats-test-secret-0123456789"
	Region    = "us-east-1"
	Bucket    = "pathstats-test"
)

// startTimeout bounds how long Start waits for the server to answer.
const startTimeout = time.Minute

// Server is a running versitygw process.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	out      *syncBuffer
	done     chan struct{}
	waitErr  error
}

// Start starts a versitygw server for the test, creates the bucket
// Bucket, sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION with
// t.Setenv (so Start cannot be used in parallel tests), stops the server
// in t.Cleanup and returns the gocloud.dev s3blob URL of the bucket:
// s3://pathstats-test?endpoint=http://127.0.0.1:PORT&region=us-east-1&use_path_style=true
func Start(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		t.Skipf("%s not set: no S3-compatible test server", EnvBinary)
	}
	srv, err := startServer(bin, t.TempDir())
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("s3test: stop: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := srv.CreateBucket(ctx, Bucket); err != nil {
		t.Fatalf("s3test: %v\nserver output:\n%s", err, srv.out.String())
	}
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_REGION", Region)
	t.Logf("s3test: versitygw %s at %s", bin, srv.Endpoint)
	return BucketURL(srv.Endpoint, Bucket)
}

// BucketURL returns the gocloud.dev s3blob URL of bucket on endpoint.
func BucketURL(endpoint, bucket string) string {
	q := url.Values{}
	q.Set("endpoint", endpoint)
	q.Set("region", Region)
	q.Set("use_path_style", "true")
	return (&url.URL{Scheme: "s3", Host: bucket, RawQuery: q.Encode()}).String()
}

// startServer starts versitygw on a free loopback port with its posix
// backend on root and waits until it answers. A port taken between
// choosing and binding it is retried.
func startServer(bin, root string) (*Server, error) {
	var lastErr error
	for range 3 {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		srv, err := launch(bin, addr, root)
		if err == nil {
			return srv, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// launch runs versitygw on addr and waits until it answers HTTP.
func launch(bin, addr, root string) (*Server, error) {
	out := &syncBuffer{}
	cmd := exec.Command(bin, "--port", addr, "--quiet", "posix", root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey, "VGW_REGION="+Region)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	srv := &Server{Endpoint: "http://" + addr, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		srv.waitErr = cmd.Wait()
		close(srv.done)
	}()
	if err := srv.waitReady(startTimeout); err != nil {
		_ = srv.Stop()
		return nil, fmt.Errorf("%w\nserver output:\n%s", err, out.String())
	}
	return srv, nil
}

// waitReady polls the endpoint until it answers any HTTP response.
func (s *Server) waitReady(timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("versitygw exited before answering: %v", s.waitErr)
		default:
		}
		resp, err := client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw at %s did not answer within %v: %w", s.Endpoint, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client returns an S3 client for the server's root account.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	return nil
}

// Stop ends the server: an interrupt, then a kill after a grace period.
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	var exit *exec.ExitError
	if s.waitErr != nil && !errors.As(s.waitErr, &exit) {
		return s.waitErr
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for the process's writers and readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
