package proxy

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running, and
// refuses to run without the client checks (clients_hook_test.go), which
// chains built in these tests must have.
func TestMain(m *testing.M) {
	if clientsForTests == nil {
		fmt.Fprintln(os.Stderr, "clientsForTests is not set: clients_hook_test.go must set it")
		os.Exit(1)
	}
	goleak.VerifyTestMain(m)
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// waitUntil polls f for up to 5 s.
func waitUntil(t *testing.T, f func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// onlyCheck returns the chain's check named name, alone.
func onlyCheck(t *testing.T, c *Chain, name string) []Check {
	t.Helper()
	for _, ch := range c.Checks() {
		if ch.Name() == name {
			return []Check{ch}
		}
	}
	t.Fatalf("no %s check in the chain", name)
	return nil
}
