package detectors

import (
	"math"
	"slices"
)

// madScale turns a median absolute deviation into a standard deviation
// estimate for normally distributed data.
const madScale = 1.4826

// robust is a ring of recent samples with their median and MAD, recomputed
// on demand. The zero value is empty; init sets the capacity.
type robust struct {
	samples []float64
	owners  []uint32 // a hash of the principal that gave each sample
	next    int
	full    bool
	dirty   bool

	median, mad float64
	principals  int // distinct owners among the samples, as of the last recompute
	scratch     []float64
}

func (r *robust) init(capacity int) {
	r.samples = make([]float64, capacity)
	r.owners = make([]uint32, capacity)
}

func (r *robust) add(v float64, owner uint32) {
	r.samples[r.next] = v
	r.owners[r.next] = owner
	r.next++
	if r.next == len(r.samples) {
		r.next, r.full = 0, true
	}
	r.dirty = true
}

func (r *robust) len() int {
	if r.full {
		return len(r.samples)
	}
	return r.next
}

// recompute refreshes median, MAD and the owner count if samples changed.
func (r *robust) recompute() {
	if !r.dirty {
		return
	}
	r.dirty = false
	n := r.len()
	if n == 0 {
		return
	}
	r.scratch = append(r.scratch[:0], r.samples[:n]...)
	slices.Sort(r.scratch)
	r.median = medianSorted(r.scratch)
	for i, v := range r.scratch {
		r.scratch[i] = math.Abs(v - r.median)
	}
	slices.Sort(r.scratch)
	r.mad = medianSorted(r.scratch)

	owners := slices.Clone(r.owners[:n])
	slices.Sort(owners)
	r.principals = len(slices.Compact(owners))
}

// peek returns the median, MAD and distinct owners of the samples as they
// are now, leaving the cached values (and so every later detection) as
// they were.
func (r *robust) peek() (median, mad float64, principals int) {
	n := r.len()
	if n == 0 {
		return 0, 0, 0
	}
	vals := slices.Clone(r.samples[:n])
	slices.Sort(vals)
	median = medianSorted(vals)
	for i, v := range vals {
		vals[i] = math.Abs(v - median)
	}
	slices.Sort(vals)
	owners := slices.Clone(r.owners[:n])
	slices.Sort(owners)
	return median, medianSorted(vals), len(slices.Compact(owners))
}

func medianSorted(s []float64) float64 {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// BaselineSnapshot is what a detector considers normal for one API and
// feature at a moment, for analysts to compare anomalies against later.
type BaselineSnapshot struct {
	Detector string
	API      string
	Feature  string
	// Centre and Spread are the robust centre (median) and spread (MAD
	// scaled to a standard deviation) of the feature.
	Centre, Spread float64
	// Samples and Principals are how many samples, from how many distinct
	// principals, the baseline holds.
	Samples, Principals int
}
