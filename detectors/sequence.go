package detectors

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apiguard/apiguard/event"
)

// SequenceName names the sequence detector's anomalies.
const SequenceName = "sequence"

// SequenceConfig configures the sequence detector.
type SequenceConfig struct {
	// MinPrincipals is how many principals of a kind must have taught an
	// API's table (each pair counts once while it lives) before a
	// transition into that API is judged.
	MinPrincipals int `yaml:"min_principals"`
	// MaxShare is the learned probability under which a transition A → B
	// is improbable: P(A before B | B, principal kind) < MaxShare.
	MaxShare float64 `yaml:"max_share"`
	// Floor is the smallest share of improbable transitions taken to be
	// usual for a principal: the principal's count is tested against the
	// share normal principals show, never below Floor.
	Floor float64 `yaml:"floor"`
	// MinImprobable is the fewest improbable transitions of one principal
	// that can be reported.
	MinImprobable int `yaml:"min_improbable"`
	// SessionGap is how long a principal may be silent before its next
	// request counts as the start of a session.
	SessionGap time.Duration `yaml:"session_gap"`
	// Kinds are the principal kinds judged (key, sub, token, ip).
	Kinds []string `yaml:"kinds"`
}

func (c SequenceConfig) validate() error {
	switch {
	case c.MinPrincipals < 2:
		return fmt.Errorf("detectors.sequence.min_principals: %d, want at least 2", c.MinPrincipals)
	case !(c.MaxShare > 0 && c.MaxShare < 0.5):
		return fmt.Errorf("detectors.sequence.max_share: %g, want in (0, 0.5)", c.MaxShare)
	case !(c.Floor > 0 && c.Floor < 1):
		return fmt.Errorf("detectors.sequence.floor: %g, want in (0, 1)", c.Floor)
	case c.MinImprobable < 2:
		return fmt.Errorf("detectors.sequence.min_improbable: %d, want at least 2", c.MinImprobable)
	case c.SessionGap <= 0:
		return fmt.Errorf("detectors.sequence.session_gap: %s, want > 0", c.SessionGap)
	}
	for i, k := range c.Kinds {
		if !slices.Contains([]string{event.KindKey, event.KindSub, event.KindToken, event.KindIP}, k) {
			return fmt.Errorf("detectors.sequence.kinds[%d]: %q, want key, sub, token or ip", i, k)
		}
	}
	return nil
}

// Sequence baselines.
//
// For each API B and principal kind, the engine learns which operation
// the principal called just before B: its previous API, or the start of
// a session (its first request, or the first after SessionGap of
// silence). A transition A → B whose learned share P(A | B, kind) is
// under MaxShare is improbable: normal sessions of that kind almost never
// reach B from A (a payment with no checkout page first, an object read
// by id with no listing before it, a second payment straight after the
// first).
//
// One odd click is not a finding. A principal's improbable transitions
// are counted against the transitions judged since its first improbable
// one, and tested with a binomial tail against the share of improbable
// transitions that principals teaching the baseline show (never below
// Floor); MinImprobable of them at least, and p ≤ max_p.
//
// What is kept:
//   - per principal, the index of its last API and which client sent it
//     (principalState.Seq, two bytes) — APIs are indexed once they are in the learned inventory
//     (served to WarmupPrincipals clients, routes.go), so a scan's
//     one-off paths are "an unlisted route", not indices;
//   - per pair, the last predecessor it taught (pair.SeqTaught): a pair
//     teaches a transition it repeats once in a row, so the tables count
//     sessions' habits, not requests, and one busy principal cannot
//     outweigh many;
//   - per API and kind, a table of the seqTop most frequent predecessors
//     with slowly forgetting counts, the rest pooled as "other" (an
//     improbable transition's share is bounded by the pool: an API
//     reached from everywhere has no improbable predecessors);
//   - per principal with improbable transitions, a suspect entry with
//     its counts and the events, dropped when reported or idle.
//
// Every principal that may teach teaches, improbable steps included (a
// flow new to an API becomes usual once about MaxShare of the sessions
// show it), but a principal is judged with its own pair's last teaching
// left out, so its own steps never make its next ones look usual.
// Flagged principals teach nothing.

// seqTop is how many predecessors an API's table names.
const seqTop = 8

// Predecessor indices: seqStart is the start of a session, seqOther an
// API outside the learned inventory; APIs in it are 1…len(Ops), at most
// 253 of them (the rest are seqOther: not judged, and pooled as
// predecessors). principalState.Seq holds the index in its low 8 bits
// and 8 bits of a hash of the client (address and fingerprint) above: a
// request from another client than the last within a session (a second
// device, a roaming phone, a thief's copy of a token) is not judged, so
// two clients' interleaved requests are not read as one sequence (one
// pair of clients in 256 share the 8 bits; with 6 bits, a customer's two
// devices at once were flagged on 2 of 24 generated days).
const (
	seqStart     uint16 = 0
	seqOther     uint16 = 0x00fe
	seqIndexMask uint16 = 0x00ff
)

// seqKeep is the per-transition forgetting of a table (half-life about
// 1,400 transitions into the API).
const seqKeep = 0.9995

// seqEvents is how many improbable transitions a suspect entry names.
const seqEvents = 4

// seqState is what the sequence detector learns.
type seqState struct {
	// Ops are the indexed APIs, index i+1 for Ops[i]; index maps back
	// (rebuilt from Ops on restore).
	Ops   []string
	index map[string]uint16
	// Tables are keyed by hashUint(API index, hash of the kind).
	Tables map[uint64]*seqTable
	// Suspects are the principals with improbable transitions.
	Suspects map[uint64]*seqSuspect
	// Rate is the share of improbable transitions among those judged of
	// principals that teach.
	Rate ratio
}

// seqTable is one API's predecessors for one principal kind.
type seqTable struct {
	Total      float32 // forgetting count of transitions taught
	Other      float32 // of which from predecessors not in Prev
	Principals uint32  // pairs that taught, each once
	Prev       [seqTop]uint16
	N          [seqTop]float32 // 0 is an empty slot
}

// seqSuspect is a principal's evidence: judged and improbable transitions
// since its first improbable one, and the last improbable ones.
type seqSuspect struct {
	Judged, Improbable uint16
	LastNs             int64
	Events             []string
	From, To           []uint16
	P                  []float32
}

func newSeqState() seqState {
	return seqState{index: map[string]uint16{}, Tables: map[uint64]*seqTable{}, Suspects: map[uint64]*seqSuspect{}}
}

type sequence struct{ cfg SequenceConfig }

func (*sequence) name() string { return SequenceName }

func (d *sequence) observe(e *Engine, x *ctx, out []finding) []finding {
	p := x.prin
	if p == nil || x.pair == nil {
		return out
	}
	s := &e.st.Seq
	cur := e.seqIndex(x)
	// 8 bits of the client: Fibonacci hashing spreads the two hashes
	// into the top bits.
	client := uint16((x.fpKey^hashStrings(string(x.ev.ClientIp)))*0x9e3779b97f4a7c15>>56) << 8
	from := p.Seq & seqIndexMask
	switched := p.Seq&^seqIndexMask != client
	if x.prevNs == 0 || x.t-x.prevNs > int64(d.cfg.SessionGap) {
		from, switched = seqStart, false
	}
	p.Seq = cur | client
	if switched || cur == seqOther || x.ev.Status >= 400 || !slices.Contains(d.cfg.Kinds, x.kind) {
		// From another client within a session (a second device, a
		// roaming phone, a thief's copy of a token), the step before is
		// the other client's: not judged, not taught.
		return out
	}
	key := hashUint(uint64(cur), hashStrings(x.kind))
	tb := s.Tables[key]
	if tb == nil {
		tb = &seqTable{}
		s.Tables[key] = tb
	}
	sus := s.Suspects[x.pkey]
	// The principal is judged against the others: what its own pair
	// taught last (a transition it repeats is taught once) is left out,
	// so its own steps never make its next ones look usual.
	share := tb.share(from, x.pair.SeqTaught == from+1)
	judged := int(tb.Principals) >= d.cfg.MinPrincipals
	improbable := judged && share < d.cfg.MaxShare
	if judged && x.learn && sus == nil {
		s.Rate.add(improbable)
	}
	if x.learn && x.pair.SeqTaught != from+1 {
		if x.pair.SeqTaught == 0 {
			tb.Principals = sat32(tb.Principals)
		}
		x.pair.SeqTaught = from + 1
		tb.teach(from, 1)
	}
	if !judged {
		return out
	}
	if sus == nil {
		if !improbable {
			return out
		}
		sus = &seqSuspect{}
		s.Suspects[x.pkey] = sus
	}
	sus.LastNs = x.t
	if sus.Judged >= 64 {
		sus.Judged, sus.Improbable = sus.Judged/2, sus.Improbable/2
		if sus.Improbable == 0 && !improbable {
			// One odd step long ago: no evidence left.
			delete(s.Suspects, x.pkey)
			return out
		}
	}
	sus.Judged++
	if !improbable {
		return out
	}
	sus.Improbable++
	if len(sus.Events) >= seqEvents {
		sus.Events, sus.From, sus.To, sus.P = sus.Events[1:], sus.From[1:], sus.To[1:], sus.P[1:]
	}
	sus.Events = append(sus.Events, strings.Clone(x.ev.Id))
	sus.From, sus.To, sus.P = append(sus.From, from), append(sus.To, cur), append(sus.P, float32(share))
	if int(sus.Improbable) < d.cfg.MinImprobable {
		return out
	}
	base := (s.Rate.Hits + d.cfg.Floor*campaignPrior) / (s.Rate.Trials + campaignPrior)
	base = max(base, d.cfg.Floor)
	pv := binomialTail(int(sus.Improbable), int(sus.Judged), base)
	if pv > e.cfg.MaxP {
		return out
	}
	delete(s.Suspects, x.pkey)
	var steps []string
	for i := range sus.From {
		steps = append(steps, fmt.Sprintf("%s → %s (%.2g%%)", e.seqName(sus.From[i]), e.seqName(sus.To[i]), 100*sus.P[i]))
	}
	return append(out, finding{p: pv, eventIDs: sus.Events,
		deviations: []*event.Deviation{
			{Feature: "improbable_transitions", Observed: float64(sus.Improbable), Expected: base * float64(sus.Judged),
				Deviation: zBinomial(float64(sus.Improbable), float64(sus.Judged), base)},
			{Feature: "transition_share", Observed: share, Expected: d.cfg.MaxShare, Deviation: share / d.cfg.MaxShare},
		},
		summary: fmt.Sprintf("sequence: %s %s made %d of %d transitions that normal %s sessions almost never show (usual share %.1f%%); last %s → %s, %.2g%% of %.0f learned, usual before it: %s; improbable steps: %s",
			x.kind, clipString(x.val, 60), sus.Improbable, sus.Judged, x.kind, 100*base, e.seqName(from), e.seqName(cur),
			100*share, tb.Total, e.seqUsual(tb), strings.Join(steps, "; "))})
}

// seqIndex returns the event's API index, indexing it once it is in the
// learned inventory.
func (e *Engine) seqIndex(x *ctx) uint16 {
	s := &e.st.Seq
	if i, ok := s.index[x.ev.Api]; ok {
		return i
	}
	if x.api.Served < uint32(e.cfg.WarmupPrincipals) || len(s.Ops) >= int(seqOther)-1 {
		return seqOther
	}
	name := strings.Clone(x.ev.Api)
	s.Ops = append(s.Ops, name)
	i := uint16(len(s.Ops))
	s.index[name] = i
	return i
}

// seqName names a predecessor index.
func (e *Engine) seqName(i uint16) string {
	switch {
	case i == seqStart:
		return "start of session"
	case int(i) <= len(e.st.Seq.Ops):
		return clipString(e.st.Seq.Ops[i-1], 60)
	}
	return "an unlisted route"
}

// seqUsual names a table's three most frequent predecessors with their
// shares.
func (e *Engine) seqUsual(tb *seqTable) string {
	idx := make([]int, 0, seqTop)
	for i, n := range tb.N {
		if n > 0 {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(a, b int) int {
		return cmp.Or(cmp.Compare(tb.N[b], tb.N[a]), cmp.Compare(tb.Prev[a], tb.Prev[b]))
	})
	var parts []string
	for _, i := range idx[:min(3, len(idx))] {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", e.seqName(tb.Prev[i]), 100*tb.N[i]/max(tb.Total, 1)))
	}
	if len(parts) == 0 {
		return "nothing learned"
	}
	return strings.Join(parts, ", ")
}

// share is the learned probability that a transition into the table's
// API comes from prev: its own count, or, for a predecessor the table
// does not name, the whole pool of others with the routes that were not
// numbered yet when they came (an upper bound: an API numbered after the
// table learned counted as an unlisted route until then), smoothed.
//
// Without own, the count is the principal's own pair's last teaching
// left out (one transition).
func (tb *seqTable) share(prev uint16, own bool) float64 {
	c, named := tb.Other, false
	for i, p := range tb.Prev {
		if tb.N[i] <= 0 {
			continue
		}
		if p == prev {
			c, named = tb.N[i], true
			break
		}
	}
	if !named && prev != seqOther {
		for i, p := range tb.Prev {
			if p == seqOther {
				c += tb.N[i]
			}
		}
	}
	total := float64(tb.Total)
	if own && named {
		c, total = max(c-1, 0), max(total-1, 0)
	}
	return (float64(c) + 0.5) / (total + 1)
}

// teach counts one transition from prev, of weight w: every count
// forgets a little, a named predecessor counts up, a new one takes an
// empty slot or the weakest if that one was seen about once (its count
// goes to the pool), and otherwise joins the pool.
func (tb *seqTable) teach(prev uint16, w float32) {
	tb.Total = tb.Total*seqKeep + w
	tb.Other *= seqKeep
	weakest := -1
	for i := range tb.N {
		tb.N[i] *= seqKeep
	}
	for i, p := range tb.Prev {
		if tb.N[i] > 0 && p == prev {
			tb.N[i] += w
			return
		}
		if weakest < 0 || tb.N[i] < tb.N[weakest] {
			weakest = i
		}
	}
	if tb.N[weakest] <= 1 {
		tb.Other += tb.N[weakest]
		tb.Prev[weakest], tb.N[weakest] = prev, w
		return
	}
	tb.Other += w
}

// sweepSequences drops suspect entries idle for IdleAfter.
func (e *Engine) sweepSequences(now int64) {
	for k, s := range e.st.Seq.Suspects {
		if now-s.LastNs > int64(e.cfg.IdleAfter) {
			delete(e.st.Seq.Suspects, k)
		}
	}
}

// restored rebuilds the API index after decoding.
func (s *seqState) restored() {
	s.index = make(map[string]uint16, len(s.Ops))
	for i, op := range s.Ops {
		s.index[op] = uint16(i + 1)
	}
	if s.Tables == nil {
		s.Tables = map[uint64]*seqTable{}
	}
	if s.Suspects == nil {
		s.Suspects = map[uint64]*seqSuspect{}
	}
}
