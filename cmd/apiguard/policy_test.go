package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/pipeline/responder"
	"github.com/apiguard/apiguard/replay"
)

var policySeeds = flag.Int("policy-seeds", 3, "generated days (seeds 1…N) that TestPolicyOnGeneratedDays judges; docs/response.md's figures use 20")

// generatedDay writes the generated day of seed to a capture file.
func generatedDay(t *testing.T, seed int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), fmt.Sprintf("seed%d.cap", seed))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := replay.NewWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	cfg := replay.DefaultGenConfig()
	cfg.Seed = uint64(seed)
	if _, err := replay.Generate(cfg, w); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPolicyOnGeneratedDays: on generated days, the default policy acts on
// no principal of the legitimate traffic (no unlabelled request would be
// refused), where the policy before rules (block every anomaly's
// principal) blocked the stolen tokens' owners; it logs the actions by
// kind per day. make test runs 3 seeds; -policy-seeds 20 gives the
// figures of docs/response.md.
func TestPolicyOnGeneratedDays(t *testing.T) {
	if testing.Short() {
		t.Skip("days of generated traffic")
	}
	oldCfg := DefaultConfig()
	oldCfg.Responder.Policies = []responder.Rule{{Name: "block-principal", Match: responder.Match{MinScore: 0.5}, Action: "block", TTL: 10 * time.Minute}}
	oldVictims := 0
	totals := map[string]int{}
	days := 0
	for seed := 1; seed <= *policySeeds; seed++ {
		file := generatedDay(t, seed)
		rep, err := runPolicyTest(file, DefaultConfig(), "", 4, 0)
		if err != nil {
			t.Fatal(err)
		}
		var line []string
		for _, d := range sortedKeys(rep.Days) {
			k := rep.Days[d]
			line = append(line, fmt.Sprintf("%s revoke %d throttle %d block %d flag %d", d, k["revoke"], k["throttle"], k["block"], k["flag"]))
			for kind, n := range k {
				totals[kind] += n
			}
			days++
		}
		t.Logf("seed %d: %s; legitimate principals acted on %d (requests refused %d)", seed, strings.Join(line, "; "), len(rep.Legitimate), rep.LegitimateRefused)
		if len(rep.Legitimate) > 0 {
			t.Errorf("seed %d: the default policy acts on legitimate principals: %v", seed, rep.Legitimate)
		}
		old, err := runPolicyTest(file, oldCfg, "", 4, 0)
		if err != nil {
			t.Fatal(err)
		}
		for p, n := range old.Legitimate {
			if strings.HasPrefix(p, "sub user-v") {
				oldVictims++
				t.Logf("seed %d: blocking every anomaly's principal would refuse %d requests of %s (a stolen token's owner)", seed, n, p)
			}
		}
	}
	if oldVictims == 0 {
		t.Error("blocking every principal refuses no stolen token's owner: the test no longer exercises the case")
	}
	t.Logf("figures: %d seeds, %d days: revoke %d, throttle %d, block %d, flag %d", *policySeeds, days,
		totals["revoke"], totals["throttle"], totals["block"], totals["flag"])
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestPolicyTestCommand: apiguard policy test prints every rule, and a
// policy that cannot be valid is refused with the rule named.
func TestPolicyTestCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("a day of generated traffic")
	}
	file := generatedDay(t, 2)
	var out bytes.Buffer
	if err := run(t.Context(), "policy", []string{"test", file, "--limit", "2"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"RULE", "stolen-token-revoke", "volumetric-throttle", "shadow-api-flag", "DAY", "legitimate principals acted on: 0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("responder:\n  policies:\n    - name: nuke\n      match: {detectors: [ddos]}\n      action: block\n      ttl: 10m\n"), 0o600)
	err := run(t.Context(), "policy", []string{"test", file, "--config", bad}, &out)
	if err == nil || !strings.Contains(err.Error(), `responder.policies[0] "nuke": match.detectors: unknown detector "ddos"`) {
		t.Errorf("bad policy: %v", err)
	}
	out.Reset()
	if err := run(t.Context(), "check-config", []string{"--config", bad}, &out); err == nil {
		t.Error("check-config accepted an unknown detector")
	}
	if err := run(t.Context(), "check-config", nil, &out); err != nil || !strings.Contains(out.String(), "name: stolen-token-revoke") {
		t.Errorf("check-config does not print the effective policy: %v\n%s", err, out.String())
	}
}
