package detectors

// Gaps in event time.
//
// A partition's events stop when the pipeline, the proxy or NATS is down,
// or when the stream dropped what a lagging pipeline had not read; they
// start again, after the restart, with every client's windows reaching
// back into time the engine never saw. A window that covers part of a gap
// holds fewer requests than its principal really made (or than it will
// make once its traffic has ramped up again), and if every pair gave its
// baseline such a window at once, the baseline would learn near-zero
// rates and every normal client would then look like a flood.
//
// So the engine treats its own start and every gap alike: a gap longer
// than a quarter of a window makes that window length not whole until one
// full window of event time has passed since the traffic resumed. Until
// then the window teaches no baseline (sampleRates, sampleObjects, the
// health detector's minutes) and the profile detector, which judges the
// shape of a whole window (a share of misses, say, can rise in a part of
// one), keeps quiet. Detectors that count towards a threshold (volumetric,
// scraping, enumeration, probing) still judge: a window that is missing requests can only count too few, so it
// can miss an attack but never accuse a client, and an attack that starts
// right after a restart is still caught.
//
// A quiet partition (no event at all for 15 s with the default windows)
// is a gap too: the engine cannot tell silence from an outage, and it errs
// towards learning nothing from windows it cannot vouch for.

// gapFraction is the share of a window (1/gapFraction) that a pause in a
// partition's event time may last before the window counts as interrupted.
const gapFraction = 4

// resume brings the engine's own clock to event time t: it starts the
// clock at the first event and, after a gap, marks the windows that reach
// back into it as not whole.
func (e *Engine) resume(t int64) {
	st := &e.st
	if st.Start == 0 {
		st.Start, st.Last = t, t
		for w := range numWindows {
			st.Resume[w] = t
		}
		return
	}
	if gap := t - st.Last; gap > 0 {
		for w := range numWindows {
			if gap > e.clk.len[w]/gapFraction {
				st.Resume[w] = t
			}
		}
		st.Last = t
	}
}

// whole reports whether the window of length w ending at now lies wholly
// in event time the engine has seen without a gap.
func (e *Engine) whole(w int, now int64) bool {
	return now >= e.st.Resume[w]+e.clk.len[w]
}
