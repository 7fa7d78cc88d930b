package detectors

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
)

// t0 is where every test's event time starts.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// who is a client as the proxy sees it.
type who struct {
	key, sub, ip, ua, hdr, lang string
}

func (w who) event(at time.Duration, api, path string) *event.RequestEvent {
	ip := netip.MustParseAddr(w.ip)
	return &event.RequestEvent{
		TimeUnixNano: t0.Add(at).UnixNano(), Api: api, Method: strings.Fields(api)[0], Path: path, Status: 200,
		ResponseBytes: 4000, UpstreamLatencyNanos: int64(30 * time.Millisecond), ClientIp: event.ClientIPBytes(ip),
		UserAgent: w.ua, HeaderFingerprint: w.hdr, AcceptLanguage: w.lang, ApiKeyId: w.key, Subject: w.sub,
		Decision: event.Decision_DECISION_ALLOW, Auth: event.AuthOutcome_AUTH_OK,
	}
}

const browserUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

// member returns the i-th member of a crowd: its own key, IP and network.
func member(prefix string, i int) who {
	return who{key: fmt.Sprintf("%s-%03d", prefix, i), ip: fmt.Sprintf("198.%d.%d.%d", 18+i/250%2, i%250, 10+i%200),
		ua: browserUA, hdr: "h1:browser", lang: "en"}
}

// crowd is n principals each calling each API as a Poisson process of
// rate per second, from..to; "{id}" in a path gets a random object id.
func crowd(seed uint64, prefix string, n int, apis map[string]float64, from, to time.Duration) []*event.RequestEvent {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out []*event.RequestEvent
	names := make([]string, 0, len(apis))
	for a := range apis {
		names = append(names, a)
	}
	slices.Sort(names)
	for i := range n {
		w := member(prefix, i)
		for _, api := range names {
			rate := apis[api]
			for t := from + time.Duration(rng.ExpFloat64()/rate*1e9); t < to; t += time.Duration(rng.ExpFloat64() / rate * 1e9) {
				path := strings.Fields(api)[1]
				path = strings.ReplaceAll(path, "{id}", strconv.Itoa(1+rng.IntN(5000)))
				out = append(out, w.event(t, api, path))
			}
		}
	}
	return out
}

// every is one principal calling api every interval, from..to; mod may
// change each event (i counts from 0).
func every(w who, api string, interval, from, to time.Duration, mod func(i int, ev *event.RequestEvent)) []*event.RequestEvent {
	var out []*event.RequestEvent
	for i, t := 0, from; t < to; i, t = i+1, t+interval {
		ev := w.event(t, api, strings.ReplaceAll(strings.Fields(api)[1], "{id}", strconv.Itoa(1000+i)))
		if mod != nil {
			mod(i, ev)
		}
		out = append(out, ev)
	}
	return out
}

// sorted merges flows in event-time order and numbers the events.
func sorted(flows ...[]*event.RequestEvent) []*event.RequestEvent {
	var all []*event.RequestEvent
	for _, f := range flows {
		all = append(all, f...)
	}
	slices.SortStableFunc(all, func(a, b *event.RequestEvent) int { return cmp.Compare(a.TimeUnixNano, b.TimeUnixNano) })
	for i, ev := range all {
		ev.Id = fmt.Sprintf("e%07d", i)
	}
	return all
}

func newEngine(t testing.TB, mod func(*Config)) *Engine {
	t.Helper()
	cfg := DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func runAll(e *Engine, evs []*event.RequestEvent) []*event.Anomaly {
	var out []*event.Anomaly
	for _, ev := range evs {
		out = append(out, e.Observe(ev)...)
	}
	return out
}

// by returns the anomalies of one detector.
func by(as []*event.Anomaly, detector string) []*event.Anomaly {
	var out []*event.Anomaly
	for _, a := range as {
		if a.Detector == detector {
			out = append(out, a)
		}
	}
	return out
}

// principals lists the "kind:value" each anomaly names.
func principals(as []*event.Anomaly) []string {
	var out []string
	for _, a := range as {
		p := a.Principal.Kind + ":" + a.Principal.Value
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// explained checks what every anomaly must carry: a score in [0,1], a
// summary, deviations with names, and the triggering event.
func explained(t *testing.T, as []*event.Anomaly) {
	t.Helper()
	for _, a := range as {
		if a.Score < 0 || a.Score > 1 || a.Risk < a.Score-1e-9 || a.Risk > 1 {
			t.Errorf("%s: score %g, risk %g", a.Detector, a.Score, a.Risk)
		}
		if a.Summary == "" || len(a.Deviations) == 0 || a.Deviations[0].Feature == "" || len(a.EventIds) == 0 || a.Id == "" {
			t.Errorf("%s: not explained: %v", a.Detector, a)
		}
	}
}
