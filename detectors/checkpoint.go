package detectors

import (
	"bytes"
	"cmp"
	"encoding/gob"
	"fmt"
	"slices"
)

// stateVersion is the checkpoint format; a checkpoint of another version
// is refused and the engine starts fresh.
const stateVersion = 10

// checkpoint is what MarshalState writes. Maps are written as slices
// sorted by key, so the same state always encodes to the same bytes: a
// restored engine can be compared with one that never stopped, byte for
// byte.
type checkpoint struct {
	Version     int
	Windows     [numWindows]int64 // the engine's windows: a checkpoint is only valid under the same
	APIs        []named[*apiState]
	Pairs       []keyed[*pair]
	Principals  []keyed[*principalState]
	Creds       []keyed[*credState]
	Logins      []keyed[*loginState]
	Params      []named[paramFile]
	Cool        []keyed[int64]
	Flagged     []keyed[int64]
	Risk        []keyed[riskState]
	Shares      []keyed[*shareState]
	Probe       ratio
	Routes      ratio
	Methods     []named[uint32]
	Campaigns   []keyed[*campaignState]
	CampRate    ratio
	ColdWrites  ratio
	ScrapeRate  ratio
	SeqOps      []string
	SeqTables   []keyed[*seqTable]
	SeqSuspects []keyed[*seqSuspect]
	SeqRate     ratio
	Start       int64
	Last        int64
	Resume      [numWindows]int64
	Swept       uint32
}

type keyed[V any] struct {
	K uint64
	V V
}

type named[V any] struct {
	K string
	V V
}

// paramFile is a paramModel with its values sorted.
type paramFile struct {
	Model  *paramModel
	Values []named[uint32]
	Shapes []named[uint32]
}

func sortedKeyed[V any](m map[uint64]V) []keyed[V] {
	out := make([]keyed[V], 0, len(m))
	for k, v := range m {
		out = append(out, keyed[V]{k, v})
	}
	slices.SortFunc(out, func(a, b keyed[V]) int { return cmp.Compare(a.K, b.K) })
	return out
}

func sortedNamed[V any](m map[string]V) []named[V] {
	out := make([]named[V], 0, len(m))
	for k, v := range m {
		out = append(out, named[V]{k, v})
	}
	slices.SortFunc(out, func(a, b named[V]) int { return cmp.Compare(a.K, b.K) })
	return out
}

func fromNamed(s []named[uint32]) map[string]uint32 {
	if len(s) == 0 {
		return nil
	}
	m := make(map[string]uint32, len(s))
	for _, e := range s {
		m[e.K] = e.V
	}
	return m
}

func toMap[V any](s []keyed[V]) map[uint64]V {
	m := make(map[uint64]V, len(s))
	for _, e := range s {
		m[e.K] = e.V
	}
	return m
}

// MarshalState encodes everything the engine has learned, for a
// checkpoint. An engine restored from it (UnmarshalState) and fed the
// events after it ends in the same state, and reports the same anomalies,
// as one that never stopped. The same state always gives the same bytes.
func (e *Engine) MarshalState() ([]byte, error) {
	st := &e.st
	c := checkpoint{Version: stateVersion, Windows: e.clk.len, APIs: sortedNamed(st.APIs), Pairs: sortedKeyed(st.Pairs),
		Principals: sortedKeyed(st.Principals), Creds: sortedKeyed(st.Creds), Logins: sortedKeyed(st.Logins),
		Cool: sortedKeyed(st.Cool), Flagged: sortedKeyed(st.Flagged), Risk: sortedKeyed(st.Risk), Shares: sortedKeyed(st.Shares),
		Probe: st.Probe, Routes: st.Routes, Methods: sortedNamed(st.Methods),
		Campaigns: sortedKeyed(st.Campaigns), CampRate: st.CampaignRate, ColdWrites: st.ColdWrites, ScrapeRate: st.ScrapeRate, Start: st.Start, Last: st.Last, Resume: st.Resume, Swept: st.Swept,
		SeqOps: st.Seq.Ops, SeqTables: sortedKeyed(st.Seq.Tables), SeqSuspects: sortedKeyed(st.Seq.Suspects), SeqRate: st.Seq.Rate}
	for _, p := range sortedNamed(st.Params) {
		m := *p.V
		m.Values, m.Shapes = nil, nil
		c.Params = append(c.Params, named[paramFile]{p.K, paramFile{Model: &m, Values: sortedNamed(p.V.Values), Shapes: sortedNamed(p.V.Shapes)}})
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(c); err != nil {
		return nil, fmt.Errorf("encoding detector state: %w", err)
	}
	return buf.Bytes(), nil
}

// UnmarshalState replaces the engine's state with a checkpoint's. It
// refuses a checkpoint of another format or other windows, leaving the
// state as it was.
func (e *Engine) UnmarshalState(b []byte) error {
	var c checkpoint
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&c); err != nil {
		return fmt.Errorf("decoding detector state: %w", err)
	}
	if c.Version != stateVersion {
		return fmt.Errorf("decoding detector state: format %d, want %d", c.Version, stateVersion)
	}
	if c.Windows != e.clk.len {
		return fmt.Errorf("decoding detector state: made with windows %v ns, the config has %v ns", c.Windows, e.clk.len)
	}
	st := engineState{APIs: map[string]*apiState{}, Pairs: toMap(c.Pairs), Principals: toMap(c.Principals),
		Creds: toMap(c.Creds), Logins: toMap(c.Logins), Params: map[string]*paramModel{}, Cool: toMap(c.Cool),
		Flagged: toMap(c.Flagged), Risk: toMap(c.Risk), Shares: toMap(c.Shares), Probe: c.Probe, Routes: c.Routes, Methods: fromNamed(c.Methods),
		Campaigns: toMap(c.Campaigns), CampaignRate: c.CampRate, ColdWrites: c.ColdWrites, ScrapeRate: c.ScrapeRate, Start: c.Start, Last: c.Last, Resume: c.Resume, Swept: c.Swept,
		Seq: seqState{Ops: c.SeqOps, Tables: toMap(c.SeqTables), Suspects: toMap(c.SeqSuspects), Rate: c.SeqRate}}
	st.Seq.restored()
	for _, a := range c.APIs {
		a.V.restored()
		st.APIs[a.K] = a.V
	}
	for _, p := range c.Params {
		m := p.V.Model
		m.Values, m.Shapes = fromNamed(p.V.Values), fromNamed(p.V.Shapes)
		st.Params[p.K] = m
	}
	if st.Methods == nil {
		st.Methods = map[string]uint32{}
	}
	e.st = st
	return nil
}

// restored marks an API's cached statistics stale after decoding.
func (a *apiState) restored() {
	for i := range a.Rate {
		a.Rate[i].dirty = true
	}
	a.KiB.dirty, a.Objs.dirty = true, true
	a.Health.Totals.dirty, a.Health.Lat.dirty = true, true
	if a.Profile == nil {
		a.Profile = newCovariance(profileDims)
	}
}
