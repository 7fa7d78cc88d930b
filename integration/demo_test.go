package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `apiguard up --demo` as README.md gives it (shortened, on
// free ports) and reads its summary: the attacker is detected and blocked,
// and no normal client is.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	dir := t.TempDir()
	p := start(t, "up", "up", "--demo", "--for", "45s",
		"--listen", freeAddr(t), "--nats-listen", freeAddr(t), "--metrics-listen", freeAddr(t), "--admin-listen", freeAddr(t),
		"--store-dir", filepath.Join(dir, "nats"), "--spool-dir", filepath.Join(dir, "spool"))
	select {
	case err := <-p.done:
		p.done <- err // for stop
		if err != nil {
			t.Fatalf("up --demo exited with %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("up --demo did not stop after --for 45s")
	}
	lines := strings.Split(strings.TrimSpace(p.output()), "\n")
	var sum struct {
		Requests         int `json:"requests"`
		EventsStored     int `json:"events_stored"`
		Anomalies        int `json:"anomalies"`
		AttackersBlocked int `json:"attackers_blocked"`
		LegitBlocked     int `json:"legit_blocked"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	if sum.AttackersBlocked != 1 || sum.LegitBlocked != 0 || sum.Anomalies < 1 || sum.Requests < 1000 || sum.EventsStored != sum.Requests {
		t.Errorf("demo summary %+v: want the attacker blocked, no normal client blocked, every request stored", sum)
	}
}
