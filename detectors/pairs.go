package detectors

import (
	"math"
	"math/bits"
	"strings"
	"time"
	"unsafe"
)

// pair is the state of one (API, principal) pair: request counts over the
// short window (in 6 slots), the medium window (in 10 slots, with misses
// and response bytes) and the long window (in 6 slots) — by default 1
// minute, 10 minutes and 1 hour — distinct objects, the object-id walk
// and inter-arrival statistics. It holds no strings and no pointers — the
// event in hand names the principal — so a million pairs cost the garbage
// collector nothing to scan. Its size is the memory target's unit
// (TestPairMemory).
type pair struct {
	LastNs  int64     // event time of the last event
	FirstNs int64     // event time of the first event
	Objs    [2]uint64 // distinct objects: this half medium window and the last, linear counting
	Short   [6]uint16
	Medium  [10]slotCell
	Long    [6]uint32
	LastObj uint32 // the last numeric object id
	// Sampled is, per rate window, the index (counted from the engine's
	// start) of the last window the pair gave its API's baseline a sample in.
	Sampled [numWindows]uint32
	Walk    uint16 // consecutive requests whose object id was one step from the last
	// SeqTaught is one more than the predecessor the pair last taught its
	// API's sequence table (sequence.go); 0 before it taught any.
	SeqTaught uint16
}

// principalState is what the engine keeps of a principal across APIs:
// requests and misses over the medium window (probing) and its
// inter-arrival gaps (bot timing).
type principalState struct {
	LastNs  int64
	Medium  [10][2]uint16 // requests and misses per medium slot
	GapMean float32       // moving average of inter-arrival gaps, seconds
	GapVar  float32       // moving variance of the gaps
	Gaps    uint16        // gaps seen, saturating
	Routes  routeState    // unknown-route evidence (routes.go)
	Seq     uint16        // index of the last API, for sequences (sequence.go)
}

// recent sums requests and misses over the medium window.
func (p *principalState) recent() (req, miss float64) {
	for _, m := range p.Medium {
		req += float64(m[0])
		miss += float64(m[1])
	}
	return req, miss
}

// slotCell is one medium slot (a minute by default) of a pair's traffic.
type slotCell struct {
	Req  uint16 // requests
	Miss uint16 // 403, 404 and 405 answers
	KiB  uint16 // response kibibytes, saturating at 64 MiB
}

// The three rate windows every API keeps a baseline for.
const (
	winShort = iota
	winMedium
	winLong
	numWindows
)

// clock is the engine's window lengths and their slot widths, in ns.
type clock struct {
	len   [numWindows]int64
	slot  [numWindows]int64
	names [numWindows]string
}

func newClock(w [numWindows]time.Duration) clock {
	var c clock
	for i, d := range w {
		c.len[i] = int64(d)
		c.names[i] = shortDuration(d)
	}
	c.slot = [numWindows]int64{c.len[0] / 6, c.len[1] / 10, c.len[2] / 6}
	return c
}

// shortDuration prints 1m0s as "1m" and 1h0m0s as "1h".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// counts returns the pair's requests over the short, medium and long
// windows, as of its last event.
func (p *pair) counts() (c [numWindows]float64) {
	for _, v := range p.Short {
		c[winShort] += float64(v)
	}
	for _, m := range p.Medium {
		c[winMedium] += float64(m.Req)
	}
	for _, v := range p.Long {
		c[winLong] += float64(v)
	}
	return c
}

// recent sums the medium window: requests, misses and KiB.
func (p *pair) recent() (req, miss, kib float64) {
	for _, m := range p.Medium {
		req += float64(m.Req)
		miss += float64(m.Miss)
		kib += float64(m.KiB)
	}
	return req, miss, kib
}

// distinctObjects estimates the distinct objects requested over the last
// one to one and a half medium windows (a rolling pair of half-window
// bitmaps) by linear counting over 64 bits: within a few percent up to
// about 100, saturating at 266 — far above what people open, which is
// what scraping is judged by.
func (p *pair) distinctObjects() float64 { return distinct(p.Objs[0] | p.Objs[1]) }

// addObject records an object by its hash in the current half window.
func (p *pair) addObject(h uint64) { p.Objs[0] |= 1 << (h & 63) }

// shiftObjects moves the object bitmaps on by halves half windows.
func (p *pair) shiftObjects(halves int64) {
	switch {
	case halves == 1:
		p.Objs = [2]uint64{0, p.Objs[0]} // the current half becomes the previous one
	case halves > 1:
		p.Objs = [2]uint64{}
	}
}

// distinct is the linear-counting estimate of a 64-bit bitmap.
func distinct(bitmap uint64) float64 {
	zeros := 64 - bits.OnesCount64(bitmap)
	if zeros == 0 {
		zeros = 1
	}
	return -64 * math.Log(float64(zeros)/64)
}

// sat16 adds one to a counter that saturates instead of wrapping.
func sat16(v uint16) uint16 {
	if v == ^uint16(0) {
		return v
	}
	return v + 1
}

// pairSize is the size of a pair, for the memory figures.
func pairSize() uintptr { return unsafe.Sizeof(pair{}) }
