package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// demoReport prints the demo as it happens and sums it up. Its methods are
// called from the pipeline, the watcher and the traffic goroutines.
type demoReport struct {
	out   io.Writer
	start time.Time

	mu          sync.Mutex
	attackers   map[string]bool // demo attacker key ids
	attacking   map[string]time.Time
	refused     map[string]bool // "key status": each refusal's first is printed
	throttled   map[string]bool // attackers throttled
	blockedAtt  map[string]bool // attackers blocked
	blockedOK   map[string]bool // other principals acted on
	legitDenied int
	transport   int // requests that got no response
	statuses    map[int]int
	loops       []time.Duration
}

func newDemoReport(out io.Writer, attackers int) *demoReport {
	r := &demoReport{out: out, start: time.Now(), attackers: map[string]bool{}, attacking: map[string]time.Time{},
		refused: map[string]bool{}, throttled: map[string]bool{}, blockedAtt: map[string]bool{}, blockedOK: map[string]bool{}, statuses: map[int]int{}}
	for i := range attackers {
		r.attackers[attackerKey(i+1)] = true
	}
	return r
}

func (r *demoReport) printf(tag, format string, args ...any) {
	fmt.Fprintf(r.out, "%6.1fs  %-9s %s\n", time.Since(r.start).Seconds(), tag, fmt.Sprintf(format, args...))
}

func (r *demoReport) attackStarted(key string) {
	r.mu.Lock()
	r.attacking[key] = time.Now()
	r.mu.Unlock()
	r.printf("ATTACK", "%s starts hammering POST /orders at %.0f req/s", key, attackRate)
}

func (r *demoReport) clientStatus(key string, attacker bool, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses[status]++
	if !attacker {
		if status == 401 || status == 403 || status == 429 {
			r.legitDenied++
		}
		return
	}
	// The first 429 (throttled) and the first 403 (blocked) are news.
	if k := fmt.Sprintf("%s %d", key, status); (status == 403 || status == 429) && !r.refused[k] {
		r.refused[k] = true
		r.printf("REFUSED", "%s now gets %d %s, %.1fs after its attack began", key, status, http.StatusText(status), time.Since(r.attacking[key]).Seconds())
	}
}

func (r *demoReport) transportError() {
	r.mu.Lock()
	r.transport++
	r.mu.Unlock()
}

// WriteAnomaly implements pipeline.Sink: it prints each detection.
func (r *demoReport) WriteAnomaly(_ context.Context, a *event.Anomaly) error {
	r.printf("DETECTED", "%s: %s (score %.6f, %s)", a.Detector, a.Summary, a.Score, strings.ToLower(strings.TrimPrefix(a.Severity.String(), "SEVERITY_")))
	return nil
}

// onAction prints what the responder decided.
func (r *demoReport) onAction(a *event.Action) {
	// The policy's actions: block, throttle (to the entry's rate) or revoke.
	verb := strings.ToUpper(a.Kind.Name())
	if a.DryRun {
		verb = "DRY-RUN"
	}
	r.printf(verb, "responder %ss %s %s for %s (%s)", a.Kind.Name(), a.Target.GetKind(), a.Target.GetValue(),
		time.Duration(a.TtlSeconds)*time.Second, a.Actor)
}

// onApply is called by the proxy's watcher when an entry takes effect.
func (r *demoReport) onApply(e enforce.Entry, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Action == enforce.ActionAllow {
		r.printf("ENFORCED", "proxy now allows %s %s", e.Kind, e.Value)
		return
	}
	loop := ""
	if !e.Trigger.IsZero() {
		d := at.Sub(e.Trigger)
		r.loops = append(r.loops, d)
		loop = fmt.Sprintf(", %d ms after the offending request", d.Milliseconds())
	}
	switch {
	case e.Kind == enforce.KindKey && r.attackers[e.Value] && e.Action == enforce.ActionBlock:
		r.blockedAtt[e.Value] = true
	case e.Kind == enforce.KindKey && r.attackers[e.Value]:
		r.throttled[e.Value] = true
	default:
		r.blockedOK[e.Kind.String()+":"+e.Value] = true
	}
	r.printf("ENFORCED", "proxy now %ss %s %s%s", e.Action, e.Kind, e.Value, loop)
}

// summary is the last line of 'up --demo --for'.
type summary struct {
	Requests           uint64  `json:"requests"`
	EventsStored       uint64  `json:"events_stored"`
	Anomalies          uint64  `json:"anomalies"`
	Blocks             uint64  `json:"blocks"`
	AttackersThrottled int     `json:"attackers_throttled"`
	AttackersBlocked   int     `json:"attackers_blocked"`
	LegitBlocked       int     `json:"legit_blocked"`
	LoopP50Ms          float64 `json:"loop_p50_ms"`
	LoopP99Ms          float64 `json:"loop_p99_ms"`
}

func (r *demoReport) summary(requests, stored, anomalies, blocks uint64) summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	return summary{Requests: requests, EventsStored: stored, Anomalies: anomalies, Blocks: blocks,
		AttackersThrottled: len(r.throttled), AttackersBlocked: len(r.blockedAtt), LegitBlocked: len(r.blockedOK),
		LoopP50Ms: percentileMs(r.loops, 50), LoopP99Ms: percentileMs(r.loops, 99)}
}

func (r *demoReport) printSummary(s summary) {
	r.mu.Lock()
	fmt.Fprintf(r.out, "\nresponses by status: %v; legitimate requests refused: %d; requests without a response: %d\n",
		r.statuses, r.legitDenied, r.transport)
	r.mu.Unlock()
	b, _ := json.Marshal(s)
	fmt.Fprintln(r.out, string(b))
}

// percentileMs is the nearest-rank percentile, in milliseconds.
func percentileMs(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return math.Round(float64(s[i])/float64(time.Microsecond)) / 1000
}

// reportOnAction returns r's action hook, or nil without a report.
func reportOnAction(r *demoReport) func(*event.Action) {
	if r == nil {
		return nil
	}
	return r.onAction
}

// reportOnApply returns r's enforcement hook, or nil without a report.
func reportOnApply(r *demoReport) func(enforce.Entry, time.Time) {
	if r == nil {
		return nil
	}
	return r.onApply
}

// clearDemoEntries deletes the enforcement entries of demo principals.
func clearDemoEntries(ctx context.Context, env *operatorEnv, out io.Writer) error {
	entries, _ := env.writer.List(ctx)
	n := 0
	for _, e := range entries {
		if e.Kind != enforce.KindKey || !(strings.HasPrefix(e.Value, "attacker-") || strings.HasPrefix(e.Value, "client-")) {
			continue
		}
		if err := env.writer.Delete(ctx, e.Kind, e.Value); err != nil {
			return err
		}
		n++
	}
	if n > 0 {
		fmt.Fprintf(out, "demo: cleared %d enforcement entries left by an earlier demo run\n", n)
	}
	return nil
}

// clearDemoDetectors deletes the detector checkpoints an earlier demo run
// left, before this run's pipeline would restore them: a demo's clients
// start afresh, so its detectors do too (a restored state would judge
// them against what the last run learnt, minutes of event time ago).
func clearDemoDetectors(ctx context.Context, url secret.URL, cfg Config, out io.Writer, log *slog.Logger) error {
	nc, js, err := connect(ctx, url, cfg.NATS.Auth, "apiguard-demo", 0, false, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	cps, err := topology.EnsureCheckpoints(ctx, js, cfg.NATS.Config)
	if err != nil {
		return err
	}
	n, err := cps.Clear(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		fmt.Fprintf(out, "demo: cleared the detector state of %d partitions left by an earlier demo run\n", n)
	}
	return nil
}
