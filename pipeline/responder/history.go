package responder

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apiguard/apiguard/event"
)

// EscalationConfig is how repeat offenders' actions grow.
type EscalationConfig struct {
	// Window is how long an enforced action counts as an offence of its
	// principal.
	Window time.Duration `yaml:"window"`
	// Factor multiplies the TTL per earlier offence within Window.
	Factor float64 `yaml:"factor"`
	// MaxTTL caps an escalated TTL.
	MaxTTL time.Duration `yaml:"max_ttl"`
	// DetectorsToBlock is how many distinct detectors flagging one
	// principal within Window turn a throttle into a block (0: never).
	DetectorsToBlock int `yaml:"detectors_to_block"`
	// DefianceRefused is how many of a throttled principal's requests the
	// proxies must have refused (429) since its throttle for it to defy
	// the throttle, which then becomes a block (0: never); see
	// Responder.ObserveEvent.
	DefianceRefused int `yaml:"defiance_refused"`
	// DefianceShare is the least share of its requests since the throttle
	// that were refused, for a principal to defy it: one that slowed down
	// to its rate is served most of what it sends.
	DefianceShare float64 `yaml:"defiance_share"`
}

// DefaultEscalationConfig doubles the TTL per repeat within a day, up to a
// day, and blocks a principal that two detectors flagged, or that went on
// sending past its throttle: 50 requests refused, at least 80% of what it
// sent since.
func DefaultEscalationConfig() EscalationConfig {
	return EscalationConfig{Window: 24 * time.Hour, Factor: 2, MaxTTL: 24 * time.Hour, DetectorsToBlock: 2,
		DefianceRefused: 50, DefianceShare: 0.8}
}

// Validate reports the first bad field by its config key.
func (c EscalationConfig) Validate() error {
	switch {
	case c.Window < time.Minute || c.Window > 30*24*time.Hour:
		return fmt.Errorf("responder.escalation.window: %s, want 1m to 720h", c.Window)
	case c.Factor < 1 || c.Factor > 100:
		return fmt.Errorf("responder.escalation.factor: %g, want 1 (no escalation) to 100", c.Factor)
	case c.MaxTTL < time.Second || c.MaxTTL > MaxTTL:
		return fmt.Errorf("responder.escalation.max_ttl: %s, want 1s to %s", c.MaxTTL, MaxTTL)
	case c.DetectorsToBlock < 0:
		return fmt.Errorf("responder.escalation.detectors_to_block: %d, want 0 (never) or more", c.DetectorsToBlock)
	case c.DefianceRefused < 0:
		return fmt.Errorf("responder.escalation.defiance_refused: %d, want 0 (never) or more", c.DefianceRefused)
	case c.DefianceRefused > 0 && (c.DefianceShare <= 0 || c.DefianceShare > 1):
		return fmt.Errorf("responder.escalation.defiance_share: %g, want more than 0 and at most 1", c.DefianceShare)
	}
	return nil
}

// offence is one enforced action on a principal.
type offence struct {
	at       time.Time
	until    time.Time // when its entry lapsed or lapses; zero: never
	detector string
	anomaly  string
}

// History is what the responder remembers of each principal's actions
// within the escalation window: its offences (enforced blocks, throttles
// and revocations, with the detector that caused each) and, for networks,
// the addresses recently acted on (groups). It is fed by the responder's
// own actions and by the audit stream (Observe), so that it survives
// restarts and is shared by pipeline replicas: every replica reads every
// action. An unblock or an allow of a principal ends its chain.
//
// The zero value is not usable; build one with NewHistory. It is safe for
// concurrent use.
type History struct {
	window time.Duration
	mu     sync.Mutex
	seen   map[string]time.Time            // action ids observed, to count each once
	byKey  map[string][]offence            // "kind value" → offences, oldest first
	nets   map[string]map[string]time.Time // network → address → last acted on
	swept  time.Time
}

// NewHistory returns a history that keeps window of actions.
func NewHistory(window time.Duration) *History {
	return &History{window: window, seen: map[string]time.Time{}, byKey: map[string][]offence{},
		nets: map[string]map[string]time.Time{}}
}

// detectorOf reads the detector out of a policy action's reason, which
// starts "<detector> anomaly on …" (see Responder.reason).
func detectorOf(reason string) string {
	d, _, ok := strings.Cut(reason, " anomaly on ")
	if !ok || strings.ContainsAny(d, " ;:") {
		return ""
	}
	return d
}

// Observe records an action from the audit stream (or the responder's
// own). Actions already observed (by id), dry-run actions and actions
// older than the window are ignored; an unblock or an allow ends the
// target's chain.
func (h *History) Observe(a *event.Action) {
	if a == nil || a.Target == nil {
		return
	}
	at := time.Unix(0, a.TimeUnixNano)
	key := a.Target.Kind + " " + a.Target.Value
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweep(at)
	if a.Id != "" {
		if _, ok := h.seen[a.Id]; ok {
			return
		}
		h.seen[a.Id] = at
	}
	switch a.Kind {
	case event.ActionKind_ACTION_UNBLOCK, event.ActionKind_ACTION_ALLOW:
		if !a.DryRun {
			delete(h.byKey, key)
		}
		return
	case event.ActionKind_ACTION_BLOCK, event.ActionKind_ACTION_THROTTLE, event.ActionKind_ACTION_REVOKE:
	default:
		return
	}
	if a.DryRun || !strings.HasPrefix(a.Actor, "policy:") {
		return
	}
	var until time.Time
	if a.TtlSeconds > 0 {
		until = at.Add(time.Duration(a.TtlSeconds) * time.Second)
	}
	// Kept in time order: the audit stream may replay an older action
	// after the responder's own newer one.
	os := h.byKey[key]
	i := len(os)
	for i > 0 && os[i-1].at.After(at) {
		i--
	}
	h.byKey[key] = slices.Insert(os, i, offence{at: at, until: until, detector: detectorOf(a.Reason), anomaly: a.AnomalyId})
	if a.Target.Kind == event.KindIP {
		if n, ok := networkOf(a.Target.Value); ok {
			m := h.nets[n]
			if m == nil {
				m = map[string]time.Time{}
				h.nets[n] = m
			}
			m[a.Target.Value] = at
		}
	}
}

// sweep drops what is older than the window, at most once a minute.
func (h *History) sweep(now time.Time) {
	if now.Sub(h.swept) < time.Minute {
		return
	}
	h.swept = now
	cut := now.Add(-h.window)
	for id, t := range h.seen {
		if t.Before(cut) {
			delete(h.seen, id)
		}
	}
	for k, os := range h.byKey {
		i := 0
		for i < len(os) && os[i].at.Before(cut) {
			i++
		}
		if i == len(os) {
			delete(h.byKey, k)
		} else if i > 0 {
			h.byKey[k] = append([]offence(nil), os[i:]...)
		}
	}
	for n, m := range h.nets {
		for a, t := range m {
			if t.Before(cut) {
				delete(m, a)
			}
		}
		if len(m) == 0 {
			delete(h.nets, n)
		}
	}
}

// Of returns the principal's offences within the window before now and
// the distinct detectors behind them. An offence is an episode of actions:
// the actions taken while an earlier one of the episode was still in
// force (a campaign that goes on) belong to it; the next action after
// they all lapsed starts a new one. Only episodes over by now count — a
// repeat is a principal that comes back after its action ended — so an
// anomaly while an action is in force keeps it at its level. The actions
// of the anomaly anomalyID are left out (a retried anomaly is not its own
// repeat).
func (h *History) Of(kind, value, anomalyID string, now time.Time) (offences int, detectors []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cut := now.Add(-h.window)
	var until time.Time // the current episode's end; zero before the first
	open := false
	for _, o := range h.byKey[kind+" "+value] {
		if o.at.Before(cut) || o.at.After(now) || (anomalyID != "" && o.anomaly == anomalyID) {
			continue
		}
		if o.detector != "" && !containsString(detectors, o.detector) {
			detectors = append(detectors, o.detector)
		}
		if open && (until.IsZero() || o.at.Before(until)) {
			if !until.IsZero() && (o.until.IsZero() || o.until.After(until)) {
				until = o.until
			}
			continue
		}
		if open {
			offences++ // the previous episode ended before this action
		}
		open, until = true, o.until
	}
	if open && !until.IsZero() && !now.Before(until) {
		offences++
	}
	return offences, detectors
}

// Last returns the time of the principal's last offence within the window.
func (h *History) Last(kind, value string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	os := h.byKey[kind+" "+value]
	if len(os) == 0 {
		return time.Time{}, false
	}
	return os[len(os)-1].at, true
}

// Acted reports whether the principal had an enforced action of the
// policy within the window (and no unblock or allow since).
func (h *History) Acted(kind, value string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byKey[kind+" "+value]) > 0
}

// Network returns the addresses of network acted on since then.
func (h *History) Network(network string, since time.Time) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	cut := since
	var out []string
	for a, t := range h.nets[network] {
		if !t.Before(cut) {
			out = append(out, a)
		}
	}
	return out
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// escalate returns the TTL of an action whose base TTL is base after
// offences earlier ones: base × factor^offences, capped at MaxTTL (never
// below base).
func (c EscalationConfig) escalate(base time.Duration, offences int) time.Duration {
	if offences <= 0 || c.Factor <= 1 {
		return base
	}
	f := math.Pow(c.Factor, float64(offences))
	ttl := time.Duration(math.Min(float64(base)*f, float64(max(c.MaxTTL, base))))
	return ttl.Round(time.Second)
}
