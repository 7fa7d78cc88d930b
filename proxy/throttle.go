package proxy

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
)

// maxThrottleBuckets bounds the buckets of throttle entries; past it the
// buckets of expired entries, then all, are dropped (a dropped bucket
// starts full again: at worst one more second's worth of requests).
const maxThrottleBuckets = 65536

// entryThrottle holds one token bucket per throttle entry that carries a
// rate (enforce.Entry.Rate): the principal may make Rate requests a second
// with a burst of one second's worth (at least one). Its zero value is
// ready to use; it is safe for concurrent use.
type entryThrottle struct {
	mu      sync.Mutex
	buckets map[throttleKey]*throttleBucket
}

// throttleKey names an entry; a new entry on the same principal (another
// expiry) gets a new, full bucket.
type throttleKey struct {
	kind    enforce.Kind
	value   string
	expires int64
}

type throttleBucket struct {
	tokens  float64
	last    time.Time
	expires time.Time
}

// take takes one token at now from the bucket of the throttle entry on
// kind and value that lapses at expires and allows rate requests a second,
// and reports whether there was one and, if not, how long until the next.
func (t *entryThrottle) take(kind enforce.Kind, value string, rate float64, expires, now time.Time) (bool, time.Duration) {
	burst := max(rate, 1)
	k := throttleKey{kind, value, expires.UnixNano()}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buckets == nil {
		t.buckets = map[throttleKey]*throttleBucket{}
	}
	b := t.buckets[k]
	if b == nil {
		if len(t.buckets) >= maxThrottleBuckets {
			t.sweep(now)
		}
		b = &throttleBucket{tokens: burst, last: now, expires: expires}
		t.buckets[k] = b
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(burst, b.tokens+el.Seconds()*rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// sweep drops the buckets of expired entries, or all when none has.
func (t *entryThrottle) sweep(now time.Time) {
	for k, b := range t.buckets {
		if !b.expires.IsZero() && !now.Before(b.expires) {
			delete(t.buckets, k)
		}
	}
	if len(t.buckets) >= maxThrottleBuckets {
		clear(t.buckets)
	}
}

// throttled answers a request that a throttle entry on kind and value
// matches, which allows rate requests a second (enforce.Entry.Rate) and
// lapses at expires: within the rate it goes on (nil); past it, or always
// when the entry carries no rate (an operator's throttle, or one written
// before rates), it is refused with 429 and a Retry-After.
func (t *entryThrottle) throttled(x *Exchange, kind enforce.Kind, value string, rate float64, expires time.Time, reason string) *Denial {
	wait := maxRetryAfter
	if rate > 0 {
		ok, next := t.take(kind, value, rate, expires, x.Now)
		if ok {
			return nil
		}
		wait = next
		reason += " (over its rate of " + strconv.FormatFloat(rate, 'g', 3, 64) + " requests/s)"
	}
	if !expires.IsZero() {
		wait = min(wait, expires.Sub(x.Now))
	}
	secs := max(1, int(wait.Seconds()+0.5))
	return &Denial{Status: http.StatusTooManyRequests, Detail: "Too many requests; retry later.",
		Decision: event.Decision_DECISION_THROTTLE, Reason: reason,
		Headers: http.Header{"Retry-After": {strconv.Itoa(secs)}}}
}
