package integration

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `apiguard up --demo` as README.md gives it (shortened, on
// free ports) three times on one store, as a user trying it again would,
// and reads each summary: the attacker is detected and throttled, goes on
// past its 429s and is blocked, and no normal client is acted on, the third time as the first (a new demo clears the
// enforcement entries and the detector state an earlier one left).
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	dir := t.TempDir()
	for run := 1; run <= 3; run++ {
		p := start(t, fmt.Sprintf("up run %d", run), "up", "--demo", "--for", "45s",
			"--listen", freeAddr(t), "--nats-listen", freeAddr(t), "--metrics-listen", freeAddr(t), "--admin-listen", freeAddr(t),
			"--store-dir", filepath.Join(dir, "nats"), "--spool-dir", filepath.Join(dir, "spool"))
		select {
		case err := <-p.done:
			p.done <- err // for stop
			if err != nil {
				t.Fatalf("run %d: up --demo exited with %v", run, err)
			}
		case <-time.After(90 * time.Second):
			t.Fatalf("run %d: up --demo did not stop after --for 45s", run)
		}
		lines := strings.Split(strings.TrimSpace(p.output()), "\n")
		var sum struct {
			Requests           int `json:"requests"`
			EventsStored       int `json:"events_stored"`
			Anomalies          int `json:"anomalies"`
			AttackersThrottled int `json:"attackers_throttled"`
			AttackersBlocked   int `json:"attackers_blocked"`
			LegitBlocked       int `json:"legit_blocked"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
			t.Fatalf("run %d: last line %q: %v", run, lines[len(lines)-1], err)
		}
		if sum.AttackersThrottled != 1 || sum.AttackersBlocked != 1 || sum.LegitBlocked != 0 || sum.Anomalies < 2 ||
			sum.Requests < 1000 || sum.EventsStored != sum.Requests {
			t.Errorf("run %d: demo summary %+v: want the attacker throttled then blocked, no normal client acted on, every request stored", run, sum)
		}
		// The report shows both actions, the block saying why.
		for _, want := range []string{"THROTTLE  responder throttles key attacker-1", "went on past its throttle",
			"BLOCK     responder blocks key attacker-1", "attacker-1 now gets 429", "attacker-1 now gets 403"} {
			if !strings.Contains(p.output(), want) {
				t.Errorf("run %d: the demo's report lacks %q:\n%s", run, want, p.output())
			}
		}
		if run > 1 && !strings.Contains(p.output(), "cleared the detector state") {
			t.Errorf("run %d did not clear the detector state the last run left", run)
		}
	}
}
