package replay

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/detectors"
)

// fakeT records what AssertDetected reports instead of failing.
type fakeT struct {
	testing.TB
	errors, fatals []string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.fatals = append(f.fatals, fmt.Sprintf(format, args...))
}

// TestAssertDetected: on a recorded scan, AssertDetected passes for the
// scanner, and fails, naming who, when the wanted principal is not
// flagged or when someone else is.
func TestAssertDetected(t *testing.T) {
	const scan = "../integration/testdata/captures/scan.capture"
	if _, err := os.Stat(scan); err != nil {
		t.Fatalf("recorded scan: %v", err)
	}
	cfg := detectors.DefaultConfig()
	AssertDetected(t, scan, cfg, "ip:13.191.36.35")

	f := &fakeT{TB: t}
	AssertDetected(f, scan, cfg, "ip:13.191.36.35", "key:innocent")
	if len(f.errors) != 1 || !strings.Contains(f.errors[0], "not flagged: key:innocent") {
		t.Errorf("a wanted principal that is not flagged: %q", f.errors)
	}
	f = &fakeT{TB: t}
	AssertDetected(f, scan, cfg)
	if len(f.errors) != 1 || !strings.Contains(f.errors[0], "flagged though not an attacker: ip:13.191.36.35 [probing]") {
		t.Errorf("a flagged principal that is not wanted: %q", f.errors)
	}
	f = &fakeT{TB: t}
	AssertDetected(f, "testdata/no-such.capture", cfg)
	if len(f.fatals) != 1 {
		t.Errorf("a missing capture: %q", f.fatals)
	}
}
