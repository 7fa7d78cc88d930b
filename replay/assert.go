package replay

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/event"
)

// Flagged runs the detectors over a capture on event time, with principals
// split over partitions engines as the pipeline splits them (Backtest), and
// returns every principal an anomaly named, "kind:value" (as
// event.PrincipalOf names it: "ip:203.0.113.7", "key:partner-3"), with the
// detectors that named it, sorted. Anomalies about a whole API (kind api)
// are left out: they flag no client.
func Flagged(r *Reader, cfg detectors.Config, partitions int) (map[string][]string, error) {
	res, err := Backtest(r, BacktestConfig{Detectors: cfg, Partitions: max(partitions, 1)})
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, a := range res.Anomalies {
		p := a.GetPrincipal()
		if p.GetKind() == event.KindAPI || p.GetKind() == "" {
			continue
		}
		k := p.Kind + ":" + p.Value
		if !slices.Contains(out[k], a.Detector) {
			out[k] = append(out[k], a.Detector)
		}
	}
	for _, d := range out {
		slices.Sort(d)
	}
	return out, nil
}

// AssertDetected is a test helper for a recorded attack kept as a test:
// it runs the detectors of cfg over the capture file on event time (one
// partition: what one pipeline replica would see) and fails t unless each
// principal in want ("kind:value") is flagged and no other principal is.
// Detection works on event time only, so the result does not depend on
// the machine or the hour the test runs. Call it from your own tests with
// your own capture and config:
//
//	func TestCheckoutScraperStaysDetected(t *testing.T) {
//		cfg := detectors.DefaultConfig()
//		replay.AssertDetected(t, "testdata/scraper.capture", cfg, "ip:198.51.100.23")
//	}
func AssertDetected(t testing.TB, capture string, cfg detectors.Config, want ...string) {
	t.Helper()
	f, err := os.Open(capture)
	if err != nil {
		t.Fatalf("AssertDetected: %v", err)
		return
	}
	defer f.Close()
	r, err := NewReader(f, capture)
	if err != nil {
		t.Fatalf("AssertDetected: %v", err)
		return
	}
	flagged, err := Flagged(r, cfg, 1)
	if err != nil {
		t.Fatalf("AssertDetected: %v", err)
		return
	}
	if msg := judge(flagged, want); msg != "" {
		t.Errorf("%s: %s", capture, msg)
	}
}

// judge says what is wrong with flagged against want, or "" when each
// wanted principal is flagged and no other is.
func judge(flagged map[string][]string, want []string) string {
	var missed, extra []string
	for _, w := range want {
		if _, ok := flagged[w]; !ok {
			missed = append(missed, w)
		}
	}
	for p, dets := range flagged {
		if !slices.Contains(want, p) {
			extra = append(extra, fmt.Sprintf("%s %v", p, dets))
		}
	}
	slices.Sort(extra)
	var msg []string
	if len(missed) > 0 {
		msg = append(msg, fmt.Sprintf("not flagged: %s", strings.Join(missed, ", ")))
	}
	if len(extra) > 0 {
		msg = append(msg, fmt.Sprintf("flagged though not an attacker: %s", strings.Join(extra, "; ")))
	}
	return strings.Join(msg, "; ")
}
