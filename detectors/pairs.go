package detectors

import (
	"math"
	"math/bits"
)

// pair is the state of one (API, principal) pair: request counts over the
// last minute (in 10 s slots), the last 10 minutes (per minute, with
// misses and response bytes) and the last hour (in 10 min slots),
// distinct objects, the object-id walk and inter-arrival statistics.
// It holds no strings and no pointers — the event in hand names the
// principal — so a million pairs cost the garbage collector nothing to
// scan. Its size is the memory target's unit (TestPairMemory).
type pair struct {
	LastNs  int64  // event time of the last event
	First   uint32 // unix second of the first event
	Flagged uint32 // unix second until which the pair teaches no baseline
	Sec10   [6]uint16
	Min     [10]minuteCell
	TenMin  [6]uint32
	Objs    [2]uint64 // distinct objects in the current 10-minute slot, linear counting
	PrevObj uint16    // distinct objects in the previous 10-minute slot
	Walk    uint16    // consecutive requests whose object id was one step from the last
	LastObj uint32    // the last numeric object id
	GapMean float32   // moving average of inter-arrival gaps, seconds
	GapVar  float32   // moving variance of the gaps
	Gaps    uint16    // gaps seen, saturating
	// Sampled is, per rate window, the index of the last window the pair
	// gave its API's baseline a sample in.
	Sampled [numWindows]uint32
}

// minuteCell is one minute of a pair's traffic.
type minuteCell struct {
	Req  uint16 // requests
	Miss uint16 // 403, 404 and 405 answers
	KiB  uint32 // response kibibytes
}

// windows are the three rate windows every API keeps a baseline for.
const (
	win1m = iota
	win10m
	win1h
	numWindows
)

var windowNames = [numWindows]string{"1m", "10m", "1h"}
var windowSeconds = [numWindows]float64{60, 600, 3600}

// counts returns the pair's requests over the last minute, 10 minutes
// and hour, as of its last event.
func (p *pair) counts() (c [numWindows]float64) {
	for _, v := range p.Sec10 {
		c[win1m] += float64(v)
	}
	for _, m := range p.Min {
		c[win10m] += float64(m.Req)
	}
	for _, v := range p.TenMin {
		c[win1h] += float64(v)
	}
	return c
}

// last10 sums the minute cells: requests, misses and KiB over the last 10
// minutes.
func (p *pair) last10() (req, miss, kib float64) {
	for _, m := range p.Min {
		req += float64(m.Req)
		miss += float64(m.Miss)
		kib += float64(m.KiB)
	}
	return req, miss, kib
}

// slot sums the minute cells of the current 10-minute slot (the one the
// distinct-object count covers): requests, misses and KiB.
func (p *pair) slot() (req, miss, kib float64) {
	now := uint32(p.LastNs / 1e9)
	for m := (now / 600) * 10; m <= now/60; m++ {
		c := p.Min[m%10]
		req += float64(c.Req)
		miss += float64(c.Miss)
		kib += float64(c.KiB)
	}
	return req, miss, kib
}

// distinctObjects estimates the distinct objects requested in the current
// 10-minute slot by linear counting over 128 bits (accurate to a few
// percent up to ~200, saturating at 620).
func (p *pair) distinctObjects() float64 {
	zeros := 128 - bits.OnesCount64(p.Objs[0]) - bits.OnesCount64(p.Objs[1])
	return linearCount(zeros, 128)
}

func linearCount(zeros, m int) float64 {
	if zeros == 0 {
		zeros = 1 // saturated: the estimate's ceiling
	}
	return -float64(m) * math.Log(float64(zeros)/float64(m))
}

// addObject records an object by its hash.
func (p *pair) addObject(h uint64) {
	bit := h & 127
	p.Objs[bit>>6] |= 1 << (bit & 63)
}

// sat16 adds one to a counter that saturates instead of wrapping.
func sat16(v uint16) uint16 {
	if v == ^uint16(0) {
		return v
	}
	return v + 1
}
