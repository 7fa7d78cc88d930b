package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/replay"
)

// TestReplayGenerateAndBacktest runs the two replay commands as a user
// would and checks the contract of the backtest's last line.
func TestReplayGenerateAndBacktest(t *testing.T) {
	file := filepath.Join(t.TempDir(), "day.cap")
	var out bytes.Buffer
	if err := cmdReplay([]string{"generate", "--seed", "5", "--hours", "6", "--out", file}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "wrote "+file) {
		t.Fatalf("generate said %q", out.String())
	}
	out.Reset()
	if err := cmdReplay([]string{"backtest", file, "--partitions", "2"}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var res struct {
		Detectors map[string]struct {
			Precision     *float64 `json:"precision"`
			Recall        *float64 `json:"recall"`
			MedianDetectS *float64 `json:"median_detect_s"`
		} `json:"detectors"`
		MacroPrecision          *float64 `json:"macro_precision"`
		MacroRecall             *float64 `json:"macro_recall"`
		FalsePositivePrincipals *int     `json:"false_positive_principals"`
		FlaggedPrincipals       *int     `json:"flagged_principals"`
		BlockedPrincipals       *int     `json:"blocked_principals"`
	}
	dec := json.NewDecoder(strings.NewReader(lines[len(lines)-1]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	if res.MacroPrecision == nil || res.MacroRecall == nil || res.FalsePositivePrincipals == nil || len(res.Detectors) != len(replay.AttackKinds) ||
		res.FlaggedPrincipals == nil || res.BlockedPrincipals == nil || *res.BlockedPrincipals == 0 {
		t.Fatalf("last line lacks fields: %s", lines[len(lines)-1])
	}
	for name, d := range res.Detectors {
		if d.Precision == nil || d.Recall == nil {
			t.Errorf("detector %s lacks precision or recall", name)
		}
	}
	if !strings.Contains(out.String(), "events/s") {
		t.Errorf("no throughput line:\n%s", out.String())
	}
}

func TestReplayErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.cap")
	if err := os.WriteFile(junk, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"generate", "--seed", "1"}, "want --out FILE"},
		{[]string{"backtest"}, "want a capture FILE"},
		{[]string{"backtest", junk}, "not an apiguard capture file"},
		{[]string{"backtest", filepath.Join(dir, "missing.cap")}, "opening capture"},
		{[]string{"rewind"}, "unknown replay command"},
	} {
		err := cmdReplay(c.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("replay %v: %v, want an error containing %q", c.args, err, c.want)
		}
		if strings.Contains(c.want, "want") && !errors.Is(err, errUsage) {
			t.Errorf("replay %v: a usage error should be errUsage", c.args)
		}
	}
}
