package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
	"github.com/apiguard/apiguard/replay"
)

// backtestWith runs the detectors of cfg over the capture file with n
// partitions, then the responder of cfg over their anomalies, offline
// (replay.Judge): the result carries its verdicts.
func backtestWith(file string, cfg Config, openapi string, n int) (*replay.Result, error) {
	dc := cfg.Detectors
	var err error
	switch {
	case openapi == "none":
		dc.Inventory.Ops = nil
	case openapi != "":
		dc.Inventory.OpenAPI = openapi
		if err := loadInventory(&dc.Inventory); err != nil {
			return nil, err
		}
	case dc.Inventory.Ops == nil:
		if dc.Inventory.Ops, err = detectors.ParseOpenAPI(replay.ShopOpenAPI); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("opening capture: %w", err)
	}
	defer f.Close()
	r, err := replay.NewReader(f, file)
	if err != nil {
		return nil, err
	}
	res, err := replay.Backtest(r, replay.BacktestConfig{Detectors: dc, Partitions: n})
	if err != nil {
		return nil, err
	}
	acts := &replay.Actions{}
	rc := cfg.Responder
	rc.Partitions = n
	resp := responder.New(rc, acts, acts, acts.Now, slog.New(slog.DiscardHandler))
	vs, err := replay.Judge(context.Background(), res, resp, acts)
	if err != nil {
		return nil, err
	}
	res.SetVerdicts(vs)
	return res, nil
}

// loadConfigFile loads a config file over the defaults and the
// environment, as --config does.
func loadConfigFile(path string) (Config, error) {
	cfg := DefaultConfig()
	if err := loadFile(path, &cfg); err != nil {
		return Config{}, err
	}
	applyEnv(&cfg)
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid config %s: %w", path, err)
	}
	return cfg, nil
}

// printVerdicts prints, for a capture without labels, every principal
// flagged or acted on: when first, what the responder did, by which
// detectors, and why.
func printVerdicts(out io.Writer, vs replay.Verdicts) {
	names := vs.Principals()
	if len(names) == 0 {
		fmt.Fprintln(out, "no principal flagged")
		return
	}
	fmt.Fprintf(out, "%-40s %-20s %-8s %s\n", "principal", "first", "action", "detectors (anomalies): why")
	for _, p := range names {
		v := vs[p]
		fmt.Fprintf(out, "%-40s %-20s %-8s %s (%d): %s\n", clipCol(p, 40), v.First.Format(time.DateTime), actionText(v),
			strings.Join(v.Detectors, ","), v.Anomalies, clipCol(v.Why, 160))
	}
}

// printComparison prints, side by side, whom each config flagged and
// what its responder did, for every principal on which they differ.
func printComparison(out io.Writer, newV replay.Verdicts, c *replay.Comparison) {
	oldV := c.Old.Verdicts
	fmt.Fprintf(out, "new config: %d principals flagged, %d blocked; old config: %d flagged, %d blocked\n",
		c.NewFlagged, c.NewBlocked, c.OldFlagged, c.OldBlocked)
	all := map[string]bool{}
	for p := range newV {
		all[p] = true
	}
	for p := range oldV {
		all[p] = true
	}
	var diff []string
	for p := range all {
		if side(newV[p]) != side(oldV[p]) {
			diff = append(diff, p)
		}
	}
	if len(diff) == 0 {
		fmt.Fprintln(out, "both configs flag and block the same principals")
		return
	}
	slices.Sort(diff)
	fmt.Fprintf(out, "%-40s | %-45s | %-45s | %s\n", "principal (where they differ)", "new", "old", "label")
	for _, p := range diff {
		label := ""
		if v := newV[p]; v != nil {
			label = v.Label
		} else if v := oldV[p]; v != nil {
			label = v.Label
		}
		fmt.Fprintf(out, "%-40s | %-45s | %-45s | %s\n", clipCol(p, 40), side(newV[p]), side(oldV[p]), label)
	}
}

// side is one config's verdict in a column: "block  probing,enumeration".
func side(v *replay.Verdict) string {
	if v == nil {
		return "-"
	}
	return clipCol(fmt.Sprintf("%-8s %s", actionText(v), strings.Join(v.Detectors, ",")), 45)
}

func actionText(v *replay.Verdict) string {
	switch {
	case v.Action != "":
		return v.Action
	case v.Recorded != "":
		return "recorded"
	}
	return "flagged"
}

func clipCol(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return event.Clip(s, n-3) + "…"
}

// Interface guards: the responder runs offline on replay.Actions.
var (
	_ responder.EntryWriter = (*replay.Actions)(nil)
	_ responder.AuditSink   = (*replay.Actions)(nil)
	_ replay.AnomalyWriter  = (*responder.Responder)(nil)
)
