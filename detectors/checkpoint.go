package detectors

import (
	"bytes"
	"encoding/gob"
	"fmt"
)

// stateVersion is the checkpoint format; a checkpoint of another version
// is refused and the engine starts fresh.
const stateVersion = 1

// checkpoint is what MarshalState writes.
type checkpoint struct {
	Version int
	Windows [numWindows]int64 // the engine's windows: a checkpoint is only valid under the same
	State   engineState
}

// MarshalState encodes everything the engine has learned, for a
// checkpoint. An engine restored from it (UnmarshalState) and fed the
// events after it ends in the same state, and reports the same anomalies,
// as one that never stopped.
func (e *Engine) MarshalState() ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(checkpoint{Version: stateVersion, Windows: e.clk.len, State: e.st}); err != nil {
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
	st := newEngineState()
	// gob leaves empty maps nil; keep the fresh ones where it did.
	if c.State.APIs != nil {
		st.APIs = c.State.APIs
	}
	if c.State.Pairs != nil {
		st.Pairs = c.State.Pairs
	}
	if c.State.Principals != nil {
		st.Principals = c.State.Principals
	}
	if c.State.Creds != nil {
		st.Creds = c.State.Creds
	}
	if c.State.Logins != nil {
		st.Logins = c.State.Logins
	}
	if c.State.Params != nil {
		st.Params = c.State.Params
	}
	if c.State.Cool != nil {
		st.Cool = c.State.Cool
	}
	if c.State.Flagged != nil {
		st.Flagged = c.State.Flagged
	}
	if c.State.Risk != nil {
		st.Risk = c.State.Risk
	}
	st.Probe, st.Start, st.Swept = c.State.Probe, c.State.Start, c.State.Swept
	for _, a := range st.APIs {
		a.restored()
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
