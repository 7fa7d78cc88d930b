package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplayImportAndCompare imports the honeynet's access log, then
// backtests it with a config that never blocks 12.0.0.0/8 against the
// defaults: the side-by-side lists the spared scanners, and the JSON line
// carries the comparison.
func TestReplayImportAndCompare(t *testing.T) {
	log := filepath.Join("..", "..", "..", "shared", "data", "real-access-logs", "honeynet-2004-apr-may.log.gz")
	if _, err := os.Stat(log); err != nil {
		t.Skipf("%s is absent (the shared evaluation data, see ../shared/data/README.md): %v", log, err)
	}
	dir := t.TempDir()
	capture := filepath.Join(dir, "honeynet.cap")
	var out bytes.Buffer
	if err := cmdReplay([]string{"import", "--format", "combined", log, "--out", capture}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "19629 events written, 100 not parsed or refused") {
		t.Errorf("import said %q", out.String())
	}
	newCfg := filepath.Join(dir, "new.yaml")
	if err := os.WriteFile(newCfg, []byte("responder:\n  never_block: [\"12.0.0.0/8\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	oldCfg := filepath.Join(dir, "old.yaml")
	if err := os.WriteFile(oldCfg, []byte("responder:\n  min_score: 0.5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := cmdReplay([]string{"backtest", capture, "--openapi", "none", "--config", newCfg, "--compare", oldCfg}, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if !strings.Contains(text, "ip:12.124.116.246") || !strings.Contains(text, "| recorded probing") {
		t.Errorf("side by side lacks the spared scanner:\n%s", text)
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	var res struct {
		Blocked int `json:"blocked_principals"`
		Compare struct {
			BlockedOnlyOld []string `json:"blocked_only_old"`
			OldBlocked     int      `json:"old_blocked"`
		} `json:"compare"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatal(err)
	}
	if res.Compare.OldBlocked != res.Blocked+len(res.Compare.BlockedOnlyOld) || len(res.Compare.BlockedOnlyOld) == 0 {
		t.Errorf("JSON line %s", lines[len(lines)-1])
	}
	for _, p := range res.Compare.BlockedOnlyOld {
		if !strings.HasPrefix(p, "ip:12.") {
			t.Errorf("%s blocked only by the old config, outside 12.0.0.0/8", p)
		}
	}
}
