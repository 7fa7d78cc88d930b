package proxy

import (
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
)

// TestEntryThrottle: a throttle entry with a rate lets the principal go on
// at that rate (a burst of one second's worth) and refuses the rest with
// 429 and a Retry-After of the time to the next token; one without a rate
// refuses everything; a new entry starts a full bucket.
func TestEntryThrottle(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	exp := t0.Add(10 * time.Minute)
	var th entryThrottle
	at := func(d time.Duration) *Exchange { return &Exchange{Now: t0.Add(d), Event: &event.RequestEvent{}} }
	run := func(n int, d time.Duration, rate float64, expires time.Time) (allowed int, last *Denial) {
		for range n {
			if den := th.throttled(at(d), enforce.KindKey, "partner", rate, expires, "key partner throttle"); den == nil {
				allowed++
			} else {
				last = den
			}
		}
		return allowed, last
	}
	if n, d := run(10, 0, 4, exp); n != 4 || d == nil || d.Status != 429 || d.Decision != event.Decision_DECISION_THROTTLE ||
		d.Headers.Get("Retry-After") != "1" {
		t.Fatalf("rate 4: %d of 10 allowed, last %+v; want 4 and a 429 with Retry-After 1", n, d)
	}
	if n, _ := run(3, 500*time.Millisecond, 4, exp); n != 2 {
		t.Errorf("half a second later: %d allowed, want 2", n)
	}
	if n, _ := run(1, 500*time.Millisecond, 4, exp.Add(time.Minute)); n != 1 {
		t.Errorf("a new entry (another expiry) shares the old bucket: %d allowed", n)
	}
	if n, _ := run(3, 0, 0.1, exp.Add(2*time.Minute)); n != 1 {
		t.Errorf("rate 0.1: %d allowed at once, want a burst of 1", n)
	}
	if _, d := run(1, time.Second, 0.1, exp.Add(2*time.Minute)); d == nil || d.Headers.Get("Retry-After") != "9" {
		t.Errorf("rate 0.1 a second later: %+v, want Retry-After 9", d)
	}
	if n, d := run(2, 0, 0, t0.Add(20*time.Second)); n != 0 || d.Headers.Get("Retry-After") != "20" {
		t.Errorf("no rate: %d allowed, Retry-After %q; want all refused until the entry lapses (20)", n, d.Headers.Get("Retry-After"))
	}
}

// TestEntryThrottleBounded: buckets of lapsed entries go when the map is full.
func TestEntryThrottleBounded(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var th entryThrottle
	for i := range maxThrottleBuckets + 10 {
		th.take(enforce.KindIP, "10.0.0.1", 1, t0.Add(time.Duration(i+1)*time.Millisecond), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(th.buckets); n > maxThrottleBuckets {
		t.Errorf("%d buckets, limit %d", n, maxThrottleBuckets)
	}
}
