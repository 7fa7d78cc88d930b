package clients

import (
	"fmt"
	"github.com/apiguard/apiguard/proxy"
	"hash/maphash"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/apiguard/apiguard/event"
)

// RateLimitName is the name of the rate-limit check in events.
const RateLimitName = "rate_limit"

// RateLimit applies token buckets in memory. Allowed answers carry the
// IETF RateLimit and RateLimit-Policy fields for the consumer's bucket; a
// refusal is a 429 with Retry-After. Throttle entries from the
// enforcement state are the enforcement check's (also 429).
type RateLimit struct {
	cfg    proxy.RateLimitConfig
	shards [64]bucketShard
	seed   maphash.Seed
}

type bucketShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
	limit  proxy.Limit
}

// maxBucketsPerShard bounds memory: past it a shard drops the buckets
// that have refilled (idle consumers), which lose nothing by it.
const maxBucketsPerShard = 16384

// NewRateLimit returns the check; cfg must be valid.
func NewRateLimit(cfg proxy.RateLimitConfig) *RateLimit {
	r := &RateLimit{cfg: cfg, seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].buckets = map[string]*bucket{}
	}
	return r
}

// Name implements Check.
func (*RateLimit) Name() string { return RateLimitName }

// take removes one token from the bucket key with limit l at now, and
// returns whether there was one, the tokens left and the time until the
// next token.
func (r *RateLimit) take(key string, l proxy.Limit, now time.Time) (ok bool, left float64, wait time.Duration) {
	sh := &r.shards[maphash.String(r.seed, key)%uint64(len(r.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[key]
	if b == nil {
		if len(sh.buckets) >= maxBucketsPerShard {
			sh.sweep(now)
		}
		b = &bucket{tokens: l.Burst, last: now, limit: l}
		sh.buckets[key] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(l.Burst, b.tokens+el*l.Rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, b.tokens, 0
	}
	return false, b.tokens, time.Duration((1 - b.tokens) / l.Rate * float64(time.Second))
}

func (sh *bucketShard) sweep(now time.Time) {
	for k, b := range sh.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*b.limit.Rate >= b.limit.Burst {
			delete(sh.buckets, k)
		}
	}
	if len(sh.buckets) >= maxBucketsPerShard {
		clear(sh.buckets) // everyone is active: start them all full
	}
}

// Check implements Check.
func (r *RateLimit) Check(x *proxy.Exchange) *proxy.Denial {
	if l, ok := r.cfg.APIs[x.API]; ok && l.Rate > 0 {
		if ok, _, wait := r.take("api\x00"+x.API, l, x.Now); !ok {
			return r.refuse(x, "api", l, wait, "API limit for "+x.API)
		}
	}
	keyed := x.Event.Auth == event.AuthOutcome_AUTH_OK && x.Creds.KeyID != ""
	policy, l := "anonymous", r.cfg.Anonymous
	if keyed {
		policy = x.Plan
		if _, ok := r.cfg.Plans[policy]; !ok {
			policy = r.cfg.DefaultPlan
		}
		l = r.cfg.Plans[policy]
	}
	if l.Rate <= 0 {
		return nil // no limit: build no key
	}
	key := "ip\x00" + x.ClientIP.String() + "\x00" + x.API
	if keyed {
		key = "key\x00" + x.Creds.KeyID + "\x00" + x.API
	}
	ok, left, wait := r.take(key, l, x.Now)
	if !ok {
		return r.refuse(x, policy, l, wait, "plan "+policy+" limit for "+x.API)
	}
	h := x.ResponseHeaders
	if h == nil {
		h = http.Header{}
		x.ResponseHeaders = h
	}
	setRateHeaders(h, policy, l, left)
	return nil
}

// setRateHeaders writes the IETF fields: the policy (quota q over window
// w seconds) and the state (r requests left, t seconds until the bucket is
// full again).
func setRateHeaders(h http.Header, policy string, l proxy.Limit, left float64) {
	window := int(math.Ceil(l.Burst / l.Rate))
	h.Set("RateLimit-Policy", fmt.Sprintf("%q;q=%d;w=%d", policy, int(l.Burst), window))
	h.Set("RateLimit", fmt.Sprintf("%q;r=%d;t=%d", policy, int(left), int(math.Ceil((l.Burst-left)/l.Rate))))
}

func (r *RateLimit) refuse(x *proxy.Exchange, policy string, l proxy.Limit, wait time.Duration, reason string) *proxy.Denial {
	h := http.Header{}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	h.Set("Retry-After", strconv.Itoa(secs))
	setRateHeaders(h, policy, l, 0)
	return &proxy.Denial{Status: http.StatusTooManyRequests, Detail: "Too many requests; retry later.",
		Decision: event.Decision_DECISION_THROTTLE, Reason: "rate limit: " + reason, Headers: h}
}
