// Package integration holds apiguard's end-to-end tests: the real binary as
// separate processes, a real embedded JetStream server, and HTTP over
// loopback sockets.
package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/testutil"
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
