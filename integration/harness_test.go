// Package integration holds apiguard's end-to-end tests: the real binary as
// separate processes, a real embedded JetStream server, and HTTP over
// loopback sockets.
package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/pipeline/topology"
	"github.com/nats-io/nats.go/jetstream"
)

// binary is the apiguard executable built once for the package's tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "apiguard-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "apiguard")
	build := exec.Command("go", "build", "-o", binary, "../cmd/apiguard")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building apiguard:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running apiguard subcommand whose output goes to a file.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

// start runs apiguard with args; it is stopped with SIGTERM when the test
// ends, and its output is printed if the test failed.
func start(t *testing.T, name string, args ...string) *process {
	t.Helper()
	p := &process{name: name, out: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, args...)
	w := &syncWriter{buf: p.out}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, p.output())
		}
	})
	return p
}

// stop sends SIGTERM and waits up to 20s for a clean exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s exited with %v", p.name, err)
		}
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("%s did not stop within 20s of SIGTERM", p.name)
	}
}

func (p *process) output() string {
	w := p.cmd.Stdout.(*syncWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return p.out.String()
}

// apiguard runs a short subcommand and returns its output.
func apiguard(t *testing.T, args ...string) string {
	t.Helper()
	out, err := tryApiguard(args...)
	if err != nil {
		t.Fatalf("apiguard %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// tryApiguard runs a short subcommand and returns its output and error.
func tryApiguard(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
	return string(out), err
}

// freeAddr returns a loopback address that is free and that servers on
// port 0 (other packages' tests, running at the same time) cannot take.
func freeAddr(t *testing.T) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t)))
}

// writeConfig writes an apiguard config into dir and returns its path.
func writeConfig(t *testing.T, dir, yaml string) string {
	t.Helper()
	path := filepath.Join(dir, "apiguard.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// echoUpstream is an upstream API that answers every request with its
// path as JSON; it is closed when the test ends.
func echoUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// startLoop starts `apiguard pipeline` (with pipelineArgs added) and
// `apiguard proxy` on the config at cfgPath against natsURL, the proxy on
// a free loopback address in front of upstream with its spool in dir. It
// returns the proxy's base URL and process; serving says when the proxy
// answers.
func startLoop(t *testing.T, dir, cfgPath, natsURL, upstream string, pipelineArgs ...string) (string, *process) {
	t.Helper()
	listen := freeAddr(t)
	start(t, "pipeline", append([]string{"pipeline", "--config", cfgPath, "--nats", natsURL}, pipelineArgs...)...)
	proxy := start(t, "proxy", "proxy", "--config", cfgPath, "--nats", natsURL, "--listen", listen,
		"--upstream", upstream, "--spool-dir", filepath.Join(dir, "spool"))
	return "http://" + listen, proxy
}

// serving waits until the proxy serves c's GET /items/1. c counts the
// requests the proxy answered (each one an event, for tests that count
// them), and not the attempts before it listened.
func serving(t *testing.T, c *client) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, func() bool {
		status, _ := c.send("GET", "/items/1")
		return status == http.StatusOK
	}, "proxy never answered")
}

// client sends requests as one principal (an API key) and remembers every
// status.
type client struct {
	key      string
	base     string
	http     *http.Client
	mu       sync.Mutex
	statuses map[int]int
	sent     *atomic.Int64
	errors   *atomic.Int64
}

// do sends one request and returns its status, 0 on a transport error
// (counted in errors).
func (c *client) do(method, path string) int {
	status, err := c.send(method, path)
	if err != nil {
		c.errors.Add(1)
	}
	return status
}

// send sends one request and returns its status, or the transport error
// (not counted).
func (c *client) send(method, path string) (int, error) {
	req, _ := http.NewRequest(method, c.base+path, nil)
	req.Header.Set("X-API-Key", c.key+".secret")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.sent.Add(1)
	c.mu.Lock()
	c.statuses[resp.StatusCode]++
	c.mu.Unlock()
	return resp.StatusCode, nil
}

// count returns how many of its requests were answered status.
func (c *client) count(status int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statuses[status]
}

// normal sends a normal client's n-th request: two GET /items/{id} for
// each POST /orders.
func (c *client) normal(n int) int {
	if n%3 == 2 {
		return c.do("POST", "/orders")
	}
	return c.do("GET", fmt.Sprintf("/items/%d", n))
}

// clients makes the clients of one proxy, counting their requests sent
// and failed at the transport together.
type clients struct {
	base         string
	sent, errors atomic.Int64
}

// add returns a new client of key; its connections are closed when the
// test ends.
func (cs *clients) add(t *testing.T, key string) *client {
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{key: key, base: cs.base, http: &http.Client{Transport: tr, Timeout: 10 * time.Second},
		statuses: map[int]int{}, sent: &cs.sent, errors: &cs.errors}
}

// baselineWarmUp is how long normal traffic runs before an attack, on the
// tests' detector windows (2s, 6s, 20s): a first window, then a few
// windows of baseline samples.
const baselineWarmUp = 6 * time.Second

// normalTraffic runs n normal clients until the stop it returns is called
// (stop waits for them and may be called again): client i makes its
// requests with request(i, k) for k = 0, 1, …, each about half a second
// after the last (400 to 600 ms, by client), so that the detectors learn
// what normal is.
func normalTraffic(n int, request func(i, k int)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for k := 0; ctx.Err() == nil; k++ {
				request(i, k)
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(400+37*i%200) * time.Millisecond):
				}
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// hammer sends POST /orders as fast as one client can until it is refused
// with 403, and returns how long that took; it fails the test after 15s.
func hammer(t *testing.T, c *client) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 15*time.Second {
		if c.do("POST", "/orders") == http.StatusForbidden {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s not blocked within 15s; statuses %v", c.key, c.statuses)
	return 0
}

// ensureTopology declares the streams and the enforcement bucket, as a
// pipeline does at its start.
func ensureTopology(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	cfg := topology.DefaultConfig()
	cfg.Partitions = 4
	if _, err := topology.Ensure(context.Background(), js, cfg); err != nil {
		t.Fatal(err)
	}
}

// auditRows returns the actions on the audit stream.
func auditRows(t *testing.T, js jetstream.JetStream) []*event.Action {
	t.Helper()
	return testutil.AuditActions(t, js)
}

// exitCode runs apiguard and returns its output and exit code.
func exitCode(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := tryApiguard(args...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	}
	t.Fatalf("apiguard %s: %v", strings.Join(args, " "), err)
	return "", 0
}
