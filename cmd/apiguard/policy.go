package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
	"github.com/apiguard/apiguard/replay"
)

// policyUsage is the help of apiguard policy.
const policyUsage = `apiguard policy test [--config F] [--partitions N] [--openapi F|none] [--limit N] [--output table|json] FILE

Runs the detectors of the config on a capture on event time, then the
responder's policy (responder.policies, or the defaults) over their
anomalies, offline, and prints what each rule would have done: its
anomalies, its actions by kind, the actions themselves (up to --limit per
rule), the actions by day, and every principal of the capture's unlabelled
traffic that an enforced action would have refused, with how many of its
requests.
`

// cmdPolicy dispatches apiguard policy's subcommands.
func cmdPolicy(args []string, out io.Writer) error {
	if len(args) == 0 || args[0] != "test" {
		return fmt.Errorf("%w: want apiguard policy test FILE\n%s", errUsage, policyUsage)
	}
	return policyTest(args[1:], out)
}

// PolicyReport is what apiguard policy test finds (its JSON form).
type PolicyReport struct {
	File      string        `json:"file"`
	Events    int           `json:"events"`
	Anomalies int           `json:"anomalies"`
	Rules     []*RuleReport `json:"rules"`
	// Days are the enforced actions (and flags) by kind per UTC day of
	// their trigger's event time.
	Days map[string]map[string]int `json:"days"`
	// Legitimate are the principals of unlabelled traffic that an
	// enforced action would have refused, with the requests refused.
	Legitimate        map[string]int `json:"legitimate_acted_on"`
	LegitimateRefused int            `json:"legitimate_requests_refused"`
}

// RuleReport is one rule's share of a PolicyReport.
type RuleReport struct {
	Name      string         `json:"name"`
	Anomalies int            `json:"anomalies"`
	Actions   map[string]int `json:"actions"` // enforced, by kind; "flag" for flags
	DryRun    int            `json:"dry_run"`
	Examples  []string       `json:"examples,omitempty"`
}

func policyTest(args []string, out io.Writer) error {
	c := newCommon("policy test")
	partitions := c.fs.Int("partitions", 0, "engines, principals split as the pipeline splits them (default nats.partitions)")
	openapi := c.fs.String("openapi", "", "declared inventory for the shadow-API detector (default: the generated shop's; none for none)")
	limit := c.fs.Int("limit", 5, "actions listed per rule")
	output := c.fs.String("output", "table", "table or json")
	var file string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		file, args = args[0], args[1:]
	}
	cfg, err := c.load(args, func(*Config) {})
	if err != nil {
		return err
	}
	if file == "" && c.fs.NArg() == 1 {
		file = c.fs.Arg(0)
	}
	if file == "" {
		return fmt.Errorf("%w: want a capture FILE", errUsage)
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("%w: --output %q, want table or json", errUsage, *output)
	}
	n := *partitions
	if n == 0 {
		n = cfg.NATS.Partitions
	}
	rep, err := runPolicyTest(file, cfg, *openapi, n, *limit)
	if err != nil {
		return err
	}
	if *output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printPolicyReport(out, rep)
	return nil
}

// runPolicyTest backtests file with cfg and judges its anomalies with
// cfg's policy, keeping each action's rule.
func runPolicyTest(file string, cfg Config, openapi string, n, limit int) (*PolicyReport, error) {
	res, err := backtestWith(file, cfg, openapi, n)
	if err != nil {
		return nil, err
	}
	acts := &replay.Actions{}
	rc := cfg.Responder
	rc.Partitions = n
	resp := responder.New(rc, acts, acts, acts.Now, slog.New(slog.DiscardHandler))
	rep := &PolicyReport{File: file, Events: res.Events, Anomalies: len(res.Anomalies), Days: map[string]map[string]int{},
		Legitimate: map[string]int{}}
	byRule := map[string]*RuleReport{}
	for _, r := range resp.Policy().Rules() {
		rr := &RuleReport{Name: r.Name, Actions: map[string]int{}}
		byRule[r.Name] = rr
		rep.Rules = append(rep.Rules, rr)
	}
	group := &RuleReport{Name: "group", Actions: map[string]int{}}
	byRule["group"] = group
	var enforced []*event.Action
	day := func(a *event.Action) map[string]int {
		t := time.Unix(0, a.TriggerUnixNano).UTC()
		if a.TriggerUnixNano == 0 {
			t = time.Unix(0, a.TimeUnixNano).UTC()
		}
		d := rep.Days[t.Format(time.DateOnly)]
		if d == nil {
			d = map[string]int{}
			rep.Days[t.Format(time.DateOnly)] = d
		}
		return d
	}
	resp.OnAction = func(a *event.Action) {
		rr := byRule[strings.TrimPrefix(a.Actor, responder.ActorPrefix)]
		if rr == nil {
			return
		}
		kind := a.Kind.Name()
		if a.DryRun {
			rr.DryRun++
		} else {
			rr.Actions[kind]++
			day(a)[kind]++
			enforced = append(enforced, a)
		}
		if len(rr.Examples) < limit {
			state := ""
			if a.DryRun {
				state = " (recorded only)"
			}
			rr.Examples = append(rr.Examples, fmt.Sprintf("%s %s %s for %s%s: %s", time.Unix(0, a.TimeUnixNano).UTC().Format(time.TimeOnly),
				kind, a.Target.Kind+" "+a.Target.Value, time.Duration(a.TtlSeconds)*time.Second, state, oneLine(a.Reason, 160)))
		}
	}
	w := &ruleTally{resp: resp, now: acts.Now, rules: byRule, day: day}
	if _, err := replay.Judge(context.Background(), res, w, acts); err != nil {
		return nil, err
	}
	if group.DryRun+len(group.Actions) > 0 {
		rep.Rules = append(rep.Rules, group)
	}
	if err := legitimateRefused(file, enforced, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// ruleTally passes anomalies to the responder and counts, per rule, the
// anomalies each matched and the flags.
type ruleTally struct {
	resp  *responder.Responder
	now   func() time.Time
	rules map[string]*RuleReport
	day   func(*event.Action) map[string]int
}

// WriteAnomaly implements replay.AnomalyWriter.
func (t *ruleTally) WriteAnomaly(ctx context.Context, a *event.Anomaly) error {
	offences, _ := t.resp.History().Of(a.GetPrincipal().GetKind(), a.GetPrincipal().GetValue(), a.Id, t.now())
	flagged := t.resp.Stats().Flagged.Load()
	if err := t.resp.WriteAnomaly(ctx, a); err != nil {
		return err
	}
	if r := t.resp.Policy().Select(a, offences); r != nil {
		rr := t.rules[r.Name]
		rr.Anomalies++
		if t.resp.Stats().Flagged.Load() > flagged {
			rr.Actions["flag"]++
			t.day(&event.Action{TriggerUnixNano: a.TimeUnixNano})["flag"]++
		}
	}
	return nil
}

// span is an enforced entry's lifetime.
type span struct{ from, to int64 }

// legitimateRefused reads file again and counts, for every unlabelled
// event, the enforced actions in force at its time that match it.
func legitimateRefused(file string, enforced []*event.Action, rep *PolicyReport) error {
	byKey := map[string][]span{}
	var nets []netip.Prefix
	netSpans := map[netip.Prefix][]span{}
	for _, a := range enforced {
		if !a.Kind.Puts() || a.Kind == event.ActionKind_ACTION_ALLOW {
			continue
		}
		s := span{a.TimeUnixNano, a.TimeUnixNano + a.TtlSeconds*int64(time.Second)}
		if a.Target.Kind == event.KindCIDR {
			p, err := netip.ParsePrefix(a.Target.Value)
			if err == nil {
				if _, ok := netSpans[p]; !ok {
					nets = append(nets, p)
				}
				netSpans[p] = append(netSpans[p], s)
			}
			continue
		}
		k := a.Target.Kind + " " + a.Target.Value
		byKey[k] = append(byKey[k], s)
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("opening capture: %w", err)
	}
	defer f.Close()
	r, err := replay.NewReader(f, file)
	if err != nil {
		return err
	}
	in := func(ss []span, t int64) bool {
		for _, s := range ss {
			if t >= s.from && t < s.to {
				return true
			}
		}
		return false
	}
	var ev event.RequestEvent
	for {
		label, err := r.Next(&ev)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if label != "" {
			continue
		}
		t := ev.TimeUnixNano
		hit := ""
		ip := event.ClientIPString(ev.ClientIp)
		for _, k := range []string{event.KindIP + " " + ip, event.KindKey + " " + ev.ApiKeyId, event.KindToken + " " + ev.TokenId,
			event.KindToken + " " + ev.TokenHash, event.KindSub + " " + ev.Subject, event.KindFP + " " + event.ClientFingerprintOf(&ev)} {
			if !strings.HasSuffix(k, " ") && in(byKey[k], t) {
				hit = k
				break
			}
		}
		if a, err := netip.ParseAddr(ip); hit == "" && err == nil {
			for _, p := range nets {
				if p.Contains(a.Unmap()) && in(netSpans[p], t) {
					hit = event.KindCIDR + " " + p.String()
					break
				}
			}
		}
		if hit != "" {
			rep.Legitimate[hit]++
			rep.LegitimateRefused++
		}
	}
}

// printPolicyReport prints rep as tables.
func printPolicyReport(out io.Writer, rep *PolicyReport) {
	fmt.Fprintf(out, "%s: %d events, %d anomalies\n\n", rep.File, rep.Events, rep.Anomalies)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tANOMALIES\tREVOKE\tTHROTTLE\tBLOCK\tFLAG\tRECORDED ONLY")
	for _, r := range rep.Rules {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", r.Name, r.Anomalies, r.Actions["revoke"], r.Actions["throttle"],
			r.Actions["block"], r.Actions["flag"], r.DryRun)
	}
	tw.Flush()
	for _, r := range rep.Rules {
		if len(r.Examples) == 0 {
			continue
		}
		fmt.Fprintf(out, "\n%s:\n", r.Name)
		for _, e := range r.Examples {
			fmt.Fprintf(out, "  %s\n", e)
		}
	}
	days := make([]string, 0, len(rep.Days))
	for d := range rep.Days {
		days = append(days, d)
	}
	sort.Strings(days)
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DAY\tREVOKE\tTHROTTLE\tBLOCK\tFLAG")
	for _, d := range days {
		k := rep.Days[d]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", d, k["revoke"], k["throttle"], k["block"], k["flag"])
	}
	tw.Flush()
	fmt.Fprintf(out, "\nlegitimate principals acted on: %d (requests of unlabelled traffic refused: %d)\n", len(rep.Legitimate), rep.LegitimateRefused)
	names := make([]string, 0, len(rep.Legitimate))
	for p := range rep.Legitimate {
		names = append(names, p)
	}
	slices.Sort(names)
	for _, p := range names {
		fmt.Fprintf(out, "  %s: %d requests\n", p, rep.Legitimate[p])
	}
}

// Interface guards
var _ replay.AnomalyWriter = (*ruleTally)(nil)
