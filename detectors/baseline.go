package detectors

import (
	"math"
	"slices"
)

// madScale turns a median absolute deviation into a standard deviation
// estimate for normally distributed data.
const madScale = 1.4826

// robust is a ring of recent samples with their median and MAD, recomputed
// on demand. Each sample carries a hash of the principal that gave it, so
// a warm-up can ask for samples from several principals. Exported fields
// are the checkpointed state; the rest is a cache.
//
// The ring is allocated at the first sample, not before: most APIs a
// scanner's unique paths create never give one, and must not each hold
// rings of Cap samples.
type robust struct {
	Samples []float32
	Owners  []uint32
	Next    int
	Full    bool
	Cap     int // the ring's length once allocated

	dirty       bool
	median, mad float64
	principals  int // distinct owners among the samples, as of the last recompute
	scratch     []float64
	ownScratch  []uint32
}

func newRobust(capacity int) robust {
	return robust{Cap: capacity, dirty: true}
}

func (r *robust) add(v float64, owner uint32) {
	if r.Samples == nil {
		r.Samples, r.Owners = make([]float32, r.Cap), make([]uint32, r.Cap)
	}
	r.Samples[r.Next] = float32(v)
	r.Owners[r.Next] = owner
	r.Next++
	if r.Next == len(r.Samples) {
		r.Next, r.Full = 0, true
	}
	r.dirty = true
}

func (r *robust) len() int {
	if r.Full {
		return len(r.Samples)
	}
	return r.Next
}

// mean returns the mean of the samples.
func (r *robust) mean() float64 {
	n := r.len()
	if n == 0 {
		return 0
	}
	var sum float64
	for _, v := range r.Samples[:n] {
		sum += float64(v)
	}
	return sum / float64(n)
}

// stats returns the median, MAD and distinct owners, recomputing them if
// samples arrived since the last call.
func (r *robust) stats() (median, mad float64, principals int) {
	if r.dirty {
		r.dirty = false
		r.median, r.mad, r.principals = r.compute(&r.scratch, &r.ownScratch)
	}
	return r.median, r.mad, r.principals
}

// peek computes the statistics afresh without touching the cache, so a
// snapshot taken for analysts never changes what is detected.
func (r *robust) peek() (median, mad float64, principals int) {
	var s []float64
	var o []uint32
	return r.compute(&s, &o)
}

func (r *robust) compute(scratch *[]float64, owners *[]uint32) (median, mad float64, principals int) {
	n := r.len()
	if n == 0 {
		return 0, 0, 0
	}
	s := (*scratch)[:0]
	for _, v := range r.Samples[:n] {
		s = append(s, float64(v))
	}
	slices.Sort(s)
	median = medianSorted(s)
	for i, v := range s {
		s[i] = math.Abs(v - median)
	}
	slices.Sort(s)
	mad = medianSorted(s)
	o := append((*owners)[:0], r.Owners[:n]...)
	slices.Sort(o)
	principals = len(slices.Compact(o))
	*scratch, *owners = s, o
	return median, mad, principals
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
