package proxy

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running, and
// refuses to run without the real checks (hooks_ext_test.go), which
// chains built in these tests must have.
func TestMain(m *testing.M) {
	if builderForTests == nil || inspectionForTests == nil {
		fmt.Fprintln(os.Stderr, "the test hooks are not set: hooks_ext_test.go must set them")
		os.Exit(1)
	}
	goleak.VerifyTestMain(m)
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
