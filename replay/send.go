package replay

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

// How a captured request is sent again (Send).
//
// A capture holds what the proxy recorded, not the request's bytes, so a
// replayed request is rebuilt from the event:
//
//   - method, path (as sent, escaped) and query: names with their values
//     where values were captured, an empty value otherwise;
//   - the headers the event records: User-Agent (none when it had none),
//     Origin, Referer and Accept-Language;
//   - the principal: an API key id becomes "<id>.<suffix>" in the API key
//     header, or the key a keys file gives for the id (captures hold key
//     ids, never secrets); a token's subject and id become an unsigned JWT
//     ("alg":"none") carrying sub and jti whose signature part is the
//     captured token hash, so each captured token is one token again and
//     the proxy reads the same sub and jti (a target that verifies tokens
//     refuses them: replay tokens against a proxy that does not);
//   - the client address, in X-Forwarded-For, only when SendConfig says so:
//     the target believes it only from a trusted proxy (proxy.trusted_proxies
//     must hold the sender's address), and ignores it otherwise, so every
//     replayed request then comes from the sender's own address;
//   - the body, where the proxy captured its parameters with values
//     (proxy.capture, body parameters named "body.…"): JSON when the names
//     are JSON paths ("body.$.…"), a form otherwise. A request whose event
//     says it had a body (request_bytes > 0) but holds no body values is
//     sent without one and counted (Report.BodiesMissing).
//
// The TLS and header-order fingerprints are the sender's, not the captured
// client's: every replayed client shares them.

// Speed values of SendConfig.Speed.
const (
	// SpeedMax sends as fast as the target answers, in each principal's order.
	SpeedMax = 0
)

// SendConfig configures Send.
type SendConfig struct {
	// Target is the base URL of the proxy ("http://127.0.0.1:8080"); the
	// captured path and query are appended to it.
	Target string
	// Speed divides the captured gaps between requests: 1 keeps the
	// capture's pace, 10 is ten times faster, SpeedMax (0) does not wait.
	Speed float64
	// Concurrency is how many requests may be in flight. Principals are
	// spread over that many senders; each principal's requests are sent
	// one after another, in the capture's order (default 8).
	Concurrency int
	// APIKeyHeader is the header the target reads API keys from
	// (proxy.api_key_header; "" sends no keys).
	APIKeyHeader string
	// Keys maps a captured API key id to the whole key to send. An id not
	// in it is sent as "<id>.<KeySuffix>".
	Keys map[string]string
	// KeySuffix is the secret part of keys not in Keys (default "replay").
	KeySuffix string
	// ForwardedFor sends the captured client address in X-Forwarded-For.
	ForwardedFor bool
	// Client sends the requests (default: a client with keep-alive and a
	// 30s timeout).
	Client *http.Client
	// Progress, when set, is called with the report so far about every
	// ProgressEvery (250ms), from Send's goroutine: counts and statuses,
	// without Principals or percentiles, which the final report has.
	Progress      func(Report)
	ProgressEvery time.Duration
	// Limit stops after this many requests (0: all).
	Limit int
	// EchoHeader, when set, names a header that carries the captured
	// status and response size ("404 1532") to a stub upstream
	// (EchoUpstream), so that the detectors behind the target see the
	// answers the capture recorded: misses, failed logins, large pages.
	EchoHeader string
}

// Report is what Send did. Its JSON form is the last line
// `apiguard replay send` prints.
type Report struct {
	// Sent counts requests that got an answer; Errors those that did not
	// (connection refused, timeout).
	Sent   int `json:"sent"`
	Errors int `json:"errors"`
	// Status counts answers by status code.
	Status map[int]int `json:"status"`
	// Refused counts answers 401, 403 and 429: the proxy's blocks,
	// throttles and credential refusals (an upstream's own 401, 403 or 429
	// counts too: the replay cannot tell them apart).
	Refused int `json:"refused"`
	// BodiesSent counts requests sent with a body rebuilt from captured
	// values; BodiesMissing those whose event says they had a body that
	// was not captured, sent without it.
	BodiesSent    int `json:"bodies_sent"`
	BodiesMissing int `json:"bodies_missing"`
	// Latency percentiles of the answers, in milliseconds.
	P50ms float64 `json:"p50_ms"`
	P90ms float64 `json:"p90_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// Elapsed is the wall time of the replay; Rate the answers a second.
	Elapsed time.Duration `json:"-"`
	Rate    float64       `json:"rate_per_s"`
	// Lag is the most a request was sent after its due time (a sender
	// still busy with the principal's earlier requests, or a slow target).
	Lag time.Duration `json:"-"`
	// Principals holds each principal's answers by status, keyed
	// "kind:value" as the detectors name it.
	Principals map[string]map[int]int `json:"-"`
	// FirstError is the first transport error, for the operator.
	FirstError string `json:"first_error,omitempty"`

	latencies []time.Duration
}

// job is one request to send, due at a time.
type job struct {
	req       *http.Request
	due       time.Time
	principal string
	body      int // 1 rebuilt, -1 missing, 0 none
}

// result is what a sender learnt of one job.
type result struct {
	principal string
	status    int
	latency   time.Duration
	lag       time.Duration
	body      int
	err       error
}

// Send re-sends the requests of a capture to a running proxy and reports
// the answers. Each principal's requests are sent in the capture's order,
// one at a time; the gaps between requests keep the capture's relative
// timing divided by cfg.Speed. It stops at the end of the capture, at
// cfg.Limit, or when ctx is done (returning ctx's error with the report so
// far). A corrupt capture stops it with an error.
func Send(ctx context.Context, r *Reader, cfg SendConfig) (*Report, error) {
	base, err := url.Parse(cfg.Target)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("replay send: target %q, want an http or https URL", cfg.Target)
	}
	if cfg.Speed < 0 || math.IsNaN(cfg.Speed) {
		return nil, fmt.Errorf("replay send: speed %g, want > 0, or 0 for as fast as possible", cfg.Speed)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.KeySuffix == "" {
		cfg.KeySuffix = "replay"
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 250 * time.Millisecond
	}
	client := cfg.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.Concurrency
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	queues := make([]chan job, cfg.Concurrency)
	results := make(chan result, 4*cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan job, 256)
		q := queues[i]
		wg.Go(func() {
			for j := range q {
				results <- send(ctx, client, j)
			}
		})
	}
	rep := &Report{Status: map[int]int{}, Principals: map[string]map[int]int{}}
	began := time.Now()
	collected := make(chan struct{})
	var mu sync.Mutex // rep, between the collector and progress
	go func() {
		defer close(collected)
		for res := range results {
			mu.Lock()
			rep.add(res)
			mu.Unlock()
		}
	}()

	readErr := func() error {
		defer func() {
			for _, q := range queues {
				close(q)
			}
		}()
		var first int64
		lastProgress := began
		ev := new(event.RequestEvent)
		for n := 0; cfg.Limit == 0 || n < cfg.Limit; n++ {
			if _, err := r.Next(ev); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err
			}
			if n == 0 {
				first = ev.TimeUnixNano
			}
			j, err := cfg.build(ctx, base, ev)
			if err != nil {
				return err
			}
			j.due = began
			if cfg.Speed > 0 {
				j.due = began.Add(time.Duration(float64(ev.TimeUnixNano-first) / cfg.Speed))
			}
			if d := time.Until(j.due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
			select {
			case queues[senderOf(j.principal, len(queues))] <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
			if cfg.Progress != nil && time.Since(lastProgress) >= cfg.ProgressEvery {
				lastProgress = time.Now()
				mu.Lock()
				snap := *rep
				snap.Status = maps.Clone(rep.Status)
				snap.Principals, snap.latencies = nil, nil // not copied: too large to copy often
				mu.Unlock()
				snap.Elapsed = time.Since(began)
				cfg.Progress(snap)
			}
		}
		return nil
	}()
	wg.Wait()
	close(results)
	<-collected
	rep.finish(time.Since(began))
	if readErr != nil {
		return rep, fmt.Errorf("replay send: %w", readErr)
	}
	return rep, nil
}

// senderOf spreads principals over n senders (FNV-1a, as event.Partition).
func senderOf(principal string, n int) int {
	return event.Partition("", principal, n)
}

// send sends one request and reads the whole answer.
func send(ctx context.Context, client *http.Client, j job) result {
	res := result{principal: j.principal, body: j.body}
	if ctx.Err() != nil {
		res.err = ctx.Err()
		return res
	}
	start := time.Now()
	res.lag = max(start.Sub(j.due), 0)
	resp, err := client.Do(j.req)
	if err != nil {
		res.err = err
		return res
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	res.status, res.latency = resp.StatusCode, time.Since(start)
	return res
}

// add counts one result.
func (rep *Report) add(res result) {
	if res.err != nil {
		rep.Errors++
		if rep.FirstError == "" {
			rep.FirstError = res.err.Error()
		}
		return
	}
	rep.Sent++
	rep.Status[res.status]++
	switch res.status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
		rep.Refused++
	}
	switch res.body {
	case 1:
		rep.BodiesSent++
	case -1:
		rep.BodiesMissing++
	}
	p := rep.Principals[res.principal]
	if p == nil {
		p = map[int]int{}
		rep.Principals[res.principal] = p
	}
	p[res.status]++
	rep.Lag = max(rep.Lag, res.lag)
	rep.latencies = append(rep.latencies, res.latency)
}

// finish computes the percentiles and the rate.
func (rep *Report) finish(elapsed time.Duration) {
	rep.Elapsed = elapsed
	rep.Rate = float64(rep.Sent) / max(elapsed.Seconds(), 1e-9)
	if len(rep.latencies) == 0 {
		return
	}
	slices.Sort(rep.latencies)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(rep.latencies)))) - 1
		return float64(rep.latencies[max(i, 0)]) / 1e6
	}
	rep.P50ms, rep.P90ms, rep.P99ms, rep.MaxMs = q(0.5), q(0.9), q(0.99), q(1)
}

// build turns an event into a request, as the comment at the top of this
// file describes.
func (cfg *SendConfig) build(ctx context.Context, base *url.URL, ev *event.RequestEvent) (job, error) {
	kind, value := event.PrincipalOf(ev)
	j := job{principal: kind + ":" + value}
	u := *base
	path := ev.Path
	if path == "" {
		path = "/"
	}
	p, err := url.Parse(path)
	if err != nil || p.Path == "" {
		// A path the proxy recorded but url cannot read again: send it raw.
		p = &url.URL{Path: path, RawPath: path}
	}
	u.Path = strings.TrimSuffix(base.Path, "/") + p.Path
	u.RawPath = ""
	if p.RawPath != "" {
		u.RawPath = strings.TrimSuffix(base.EscapedPath(), "/") + p.RawPath
	}
	var q strings.Builder
	var body []*event.QueryParam
	values := false
	for _, qp := range ev.Query {
		if strings.HasPrefix(qp.Name, proxy.BodyParamPrefix) {
			body = append(body, qp)
			values = values || qp.Value != ""
			continue
		}
		if q.Len() > 0 {
			q.WriteByte('&')
		}
		q.WriteString(url.QueryEscape(qp.Name))
		q.WriteByte('=')
		q.WriteString(url.QueryEscape(qp.Value))
	}
	u.RawQuery = q.String()
	method := ev.Method
	if method == "" {
		method = http.MethodGet
	}
	var rd io.Reader
	ctype := ""
	switch {
	case values:
		b, ct := rebuildBody(body)
		rd, ctype, j.body = strings.NewReader(b), ct, 1
	case ev.RequestBytes > 0 && method != http.MethodGet && method != http.MethodHead:
		j.body = -1
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return j, fmt.Errorf("event %s: building request: %w", ev.Id, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("User-Agent", ev.UserAgent) // "" sends none
	for h, v := range map[string]string{"Origin": ev.Origin, "Referer": ev.Referer, "Accept-Language": ev.AcceptLanguage} {
		if v != "" {
			req.Header.Set(h, v)
		}
	}
	if id := ev.ApiKeyId; id != "" && cfg.APIKeyHeader != "" {
		key, ok := cfg.Keys[id]
		if !ok {
			key = id + "." + cfg.KeySuffix
		}
		req.Header.Set(cfg.APIKeyHeader, key)
	}
	if tok := replayToken(ev); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if cfg.ForwardedFor {
		if ip := event.ClientIPString(ev.ClientIp); ip != "" {
			req.Header.Set("X-Forwarded-For", ip)
		}
	}
	if cfg.EchoHeader != "" && ev.Status != 0 {
		req.Header.Set(cfg.EchoHeader, strconv.FormatUint(uint64(ev.Status), 10)+" "+strconv.FormatInt(max(ev.ResponseBytes, 0), 10))
	}
	j.req = req
	return j, nil
}

// replayToken is the bearer token sent for an event's token: an unsigned
// JWT with the captured sub and jti, signed with the token hash so each
// captured token stays one token; "" when the event had none. A client
// certificate's identity ("cert:…") cannot be sent and is left out.
func replayToken(ev *event.RequestEvent) string {
	sub := ev.Subject
	if strings.HasPrefix(sub, "cert:") {
		sub = ""
	}
	if sub == "" && ev.TokenId == "" && ev.TokenHash == "" {
		return ""
	}
	claims, _ := json.Marshal(struct {
		Sub string `json:"sub,omitempty"`
		JTI string `json:"jti,omitempty"`
	}{sub, ev.TokenId})
	sig := ev.TokenHash
	if sig == "" {
		sig = sub + "|" + ev.TokenId
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString(claims) + "." +
		enc.EncodeToString([]byte(sig))
}

// rebuildBody makes a body of captured body parameters: a JSON document
// when their names are JSON paths ("body.$.a.b", "body.$.items[].sku"),
// a form otherwise. JSON leaves are sent as strings: the capture does not
// keep their type.
func rebuildBody(params []*event.QueryParam) (body, contentType string) {
	if !strings.HasPrefix(params[0].Name, proxy.BodyParamPrefix+"$") {
		form := url.Values{}
		for _, p := range params {
			form.Add(strings.TrimPrefix(p.Name, proxy.BodyParamPrefix), p.Value)
		}
		return form.Encode(), "application/x-www-form-urlencoded"
	}
	root := map[string]any{}
	for _, p := range params {
		path := strings.TrimPrefix(strings.TrimPrefix(p.Name, proxy.BodyParamPrefix+"$"), ".")
		setPath(root, strings.Split(path, "."), p.Value)
	}
	b, _ := json.Marshal(root)
	return string(b), "application/json"
}

// setPath sets the leaf at path in obj; a segment ending in "[]" is an
// array, to which a leaf is appended (or, for an array of objects, a new
// object begun when the current one already has the key).
func setPath(obj map[string]any, path []string, v string) {
	seg := path[0]
	name, array := strings.CutSuffix(seg, "[]")
	if len(path) == 1 {
		if array {
			a, _ := obj[name].([]any)
			obj[name] = append(a, v)
		} else {
			obj[name] = v
		}
		return
	}
	if !array {
		child, ok := obj[name].(map[string]any)
		if !ok {
			child = map[string]any{}
			obj[name] = child
		}
		setPath(child, path[1:], v)
		return
	}
	a, _ := obj[name].([]any)
	var last map[string]any
	if len(a) > 0 {
		last, _ = a[len(a)-1].(map[string]any)
	}
	if last == nil || has(last, path[1:]) {
		last = map[string]any{}
		a = append(a, last)
	}
	obj[name] = a
	setPath(last, path[1:], v)
}

// has reports whether obj already holds a scalar leaf at path.
func has(obj map[string]any, path []string) bool {
	name, array := strings.CutSuffix(path[0], "[]")
	v, ok := obj[name]
	if !ok || array {
		return false
	}
	if len(path) == 1 {
		return true
	}
	child, ok := v.(map[string]any)
	return ok && has(child, path[1:])
}

// Summary is the report in a line for people: counts by status, refusals,
// bodies, latency percentiles and rate.
func (rep *Report) Summary() string {
	codes := make([]int, 0, len(rep.Status))
	for c := range rep.Status {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var st strings.Builder
	for i, c := range codes {
		if i > 0 {
			st.WriteByte(' ')
		}
		st.WriteString(strconv.Itoa(c) + ":" + strconv.Itoa(rep.Status[c]))
	}
	return fmt.Sprintf("sent %d in %s (%.0f/s), %d errors, %d refused; status %s; latency p50 %.1fms p90 %.1fms p99 %.1fms max %.1fms; %d bodies rebuilt, %d sent without their body (not captured)",
		rep.Sent, rep.Elapsed.Round(time.Millisecond), rep.Rate, rep.Errors, rep.Refused, st.String(),
		rep.P50ms, rep.P90ms, rep.P99ms, rep.MaxMs, rep.BodiesSent, rep.BodiesMissing)
}

// maxEchoBytes bounds the body EchoUpstream writes.
const maxEchoBytes = 1 << 20

// EchoUpstream is a stub upstream for replays: it answers each request
// with the status and the number of body bytes its header names
// ("404 1532", SendConfig.EchoHeader), 200 and nothing without it. Behind
// a proxy it reproduces what the captured upstream answered, so a replayed
// scan still misses and a replayed stuffing run still fails.
func EchoUpstream(header string) http.Handler {
	filler := strings.Repeat("x", 4096)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		status, size := http.StatusOK, 0
		if st, n, ok := strings.Cut(r.Header.Get(header), " "); ok {
			if v, err := strconv.Atoi(st); err == nil && v >= 200 && v <= 599 {
				status = v
			}
			if v, err := strconv.Atoi(n); err == nil && v > 0 {
				size = min(v, maxEchoBytes)
			}
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.WriteHeader(status)
		for size > 0 {
			n := min(size, len(filler))
			if _, err := io.WriteString(w, filler[:n]); err != nil {
				return
			}
			size -= n
		}
	})
}
