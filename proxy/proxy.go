// Package proxy provides apiguard's enforcing reverse proxy: it names each
// request's API and client, runs the check chain, forwards what passes
// (on the native engine through its own upstream pool, upstream.go; for
// HTTP/2, https upstreams and upgrades with httputil.ReverseProxy), and
// hands one event per request to an Emitter without waiting on it.
//
// This package holds the server (HTTP/1.x framing, the native HTTP/1.1
// engine and its upstream pool, net/http with HTTP/2, TLS and its
// fingerprints), the exchange, the chain type and the data plane, client
// identity, the enforcement check and the capture of events. The checks
// implement Check and live in subpackages that import this one:
// proxy/auth (API keys, JWT, signatures, proxy tokens, vault and
// injection), proxy/inspect (limits, JSON and XML, libinjection, the CRS,
// OpenAPI validation) and proxy/clients (decoys, bots, origins, rate
// limits). proxy/chain assembles the chain from a Config (chain.Build)
// through NewChainWith, and Reloader builds each new chain with it.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apiguard/apiguard/event"
)

// Emitter takes finished request events. Emit must not block; the proxy
// calls it once per request from the request's goroutine and gives up the
// event.
type Emitter interface {
	Emit(ev *event.RequestEvent)
}

// Stats are the proxy's counters, safe to read while it serves.
type Stats struct {
	Requests      atomic.Uint64
	Denied        atomic.Uint64
	UpstreamError atomic.Uint64
}

// Proxy is an http.Handler. Build it with New; it is safe for concurrent use.
type Proxy struct {
	state   atomic.Pointer[state]
	emit    Emitter
	rp      *httputil.ReverseProxy
	up      *upstreamPool // the native engine's upstream client; nil: rp only
	ids     *event.IDSource
	log     *slog.Logger
	now     func() time.Time
	stats   Stats
	metrics *Metrics // nil: none
	// partitions is the number of event partitions events are spread over.
	partitions int
	lastErrLog atomic.Int64
	lastRare   atomic.Int64
}

type exchangeKey struct{}

// New returns a proxy for cfg that runs checks in order and emits to emit.
// partitions is the number of event partitions (see event.Partition).
func New(cfg Config, checks []Check, emit Emitter, partitions int, log *slog.Logger) (*Proxy, error) {
	return NewWithChain(cfg, nil, checks, emit, partitions, log)
}

// NewWithChain is New with a built chain (proxy/chain's Build); checks is used
// when chain is nil.
func NewWithChain(cfg Config, chain *Chain, checks []Check, emit Emitter, partitions int, log *slog.Logger) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if partitions < 1 {
		return nil, fmt.Errorf("partitions: %d, want at least 1", partitions)
	}
	if cfg.Instance == "" {
		cfg.Instance, _ = os.Hostname()
	}
	p := &Proxy{emit: emit, ids: event.NewIDSource(), log: log, now: time.Now, partitions: partitions}
	if chain == nil {
		chain = NewChain(cfg, checks...)
	}
	p.state.Store(newState(cfg, chain))
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 256
	transport.ResponseHeaderTimeout = cfg.UpstreamTimeout
	if u, err := url.Parse(cfg.Upstream); err == nil && cfg.Engine != EngineNetHTTP {
		p.up = newUpstreamPool(u, cfg.UpstreamTimeout)
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      timedTransport{transport},
		ErrorHandler:   p.upstreamError,
		ModifyResponse: p.modifyResponse,
		BufferPool:     copyBuffers,
	}
	return p, nil
}

// Stats returns the live counters.
func (p *Proxy) Stats() *Stats { return &p.stats }

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := p.now()
	p.stats.Requests.Add(1)
	st := p.state.Load()
	x := p.exchange(st, r, start)
	ev := x.Event
	x.setHeader(w.Header(), event.HeaderRequestID, ev.Id)
	if x.wire.Ambiguous != "" {
		// Refused before any check, and the connection is closed: what
		// follows an ambiguous request on it cannot be trusted.
		p.stats.Denied.Add(1)
		d := &Denial{Status: http.StatusBadRequest, Detail: "The request's framing is ambiguous.",
			Headers: http.Header{"Connection": {"close"}}}
		if x.wire.Ambiguous == reasonHeadTooLong {
			d.Status, d.Detail = http.StatusRequestHeaderFieldsTooLarge, "The request's head is longer than the proxy accepts."
		}
		ev.Decision, ev.Check, ev.Reason, ev.Status = event.Decision_DECISION_BLOCK, FramingName, x.wire.Ambiguous, uint32(d.Status)
		writeProblem(w, d, ev.Id)
		p.finish(x, start)
		return
	}

	for _, c := range st.chain.checks {
		d := c.Check(x)
		if d == nil {
			continue
		}
		if !d.Answer {
			p.stats.Denied.Add(1)
		}
		ev.Decision, ev.Check, ev.Reason, ev.Status = d.Decision, c.Name(), d.Reason, uint32(d.Status)
		if d.Auth != event.AuthOutcome_AUTH_UNSPECIFIED {
			ev.Auth = d.Auth
		}
		writeProblem(w, d, ev.Id)
		p.finish(x, start)
		return
	}

	ev.Decision = event.Decision_DECISION_ALLOW
	var body *countingBody
	if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
		body = &countingBody{ReadCloser: r.Body}
		r.Body = body
	}
	rec := &x.rec
	rec.ResponseWriter = w
	x.ctx = exchangeCtx{Context: r.Context(), x: x}
	if _, native := w.(*h1writer); native && p.up != nil && p.up.serves(st.upstream) && r.Header["Upgrade"] == nil {
		// The native engine's own upstream leg (upstream.go); upgrades,
		// HTTP/2 clients and https upstreams go through ReverseProxy.
		p.forward(rec, r, x)
	} else {
		p.rp.ServeHTTP(rec, r.WithContext(&x.ctx))
	}
	if body != nil {
		ev.RequestBytes = body.n.Load()
	}
	ev.Status = uint32(rec.status())
	ev.ResponseBytes = rec.n
	p.finish(x, start)
}

// exchangeCtx is the request context the upstream leg runs with: the
// client's context, and the exchange under exchangeKey. It lives inside
// the Exchange, so carrying the exchange to rewrite, the transport and
// modifyResponse allocates nothing (context.WithValue would).
type exchangeCtx struct {
	context.Context
	x *Exchange
}

// Value implements context.Context.
func (c *exchangeCtx) Value(key any) any {
	if key == (exchangeKey{}) {
		return c.x
	}
	return c.Context.Value(key)
}

// setHeader sets h[key] (key canonical) to the single value v, in one of
// the exchange's value slots rather than a fresh one-element slice.
func (x *Exchange) setHeader(h http.Header, key, v string) {
	if x.nhv == len(x.hv) {
		h[key] = []string{v}
		return
	}
	i := x.nhv
	x.nhv++
	x.hv[i] = v
	h[key] = x.hv[i : i+1 : i+1]
}

// exchange reads what the checks and the event need from r. Every string
// it copies from the request into the event is valid UTF-8 (clip,
// event.ValidUTF8): the path as the client sent it (escaped), other bytes
// written as %XX. The fields the exchange keys on (API, credentials, client
// fingerprint, partition) are computed from the cleaned values, so that the
// proxy, the pipeline and enforcement entries name a client the same way.
func (p *Proxy) exchange(st *state, r *http.Request, start time.Time) *Exchange {
	ip, chain := st.ident.ClientIP(r)
	creds := st.ident.Credentials(r)
	info, _ := r.Context().Value(connInfoKey{}).(*connInfo)
	var (
		wire  Wire
		state = r.TLS
	)
	if info != nil {
		if info.wire != nil {
			wire, _ = info.wire.next()
		}
		if state == nil {
			state = info.tls
		}
	}
	if creds.Cert = certIdentity(state); creds.Cert != "" && creds.Subject == "" {
		creds.Subject = creds.Cert
	}
	if wire.HeaderOrder == "" {
		wire.HeaderOrder = headerSetFingerprint(r.Header)
	}
	method := event.ValidUTF8(r.Method)
	api := st.routes.API(method, r.URL.Path)
	// The exchange and its event are one allocation; the event outlives
	// the request (the emitter owns it), and finish drops the exchange's
	// references so that it does not keep the request alive.
	x := &Exchange{}
	ev := &x.ev
	*ev = event.RequestEvent{
		Schema:            event.SchemaVersion,
		Id:                p.ids.New(start),
		TimeUnixNano:      start.UnixNano(),
		Proxy:             st.cfg.Instance,
		Api:               api,
		Method:            method,
		Host:              event.ValidUTF8(r.Host),
		Path:              clip(r.URL.EscapedPath(), 2048),
		ClientIp:          event.ClientIPBytes(ip),
		ForwardedFor:      chain,
		UserAgent:         clip(r.UserAgent(), 512),
		HeaderFingerprint: wire.HeaderOrder,
		ApiKeyId:          creds.KeyID,
		TokenId:           creds.TokenID,
		TokenHash:         creds.TokenHash,
		Subject:           creds.Subject,
		Origin:            clip(r.Header.Get("Origin"), 256),
		Referer:           clip(r.Referer(), 512),
		AcceptLanguage:    clip(r.Header.Get("Accept-Language"), 128),
		Auth:              event.AuthOutcome_AUTH_MISSING,
	}
	if r.ContentLength > 0 {
		ev.RequestBytes = r.ContentLength
	}
	if creds.KeyID != "" || creds.TokenHash != "" {
		// Present but not verified: verification is a check of its own.
		ev.Auth = event.AuthOutcome_AUTH_UNSPECIFIED
	}
	if r.URL.RawQuery != "" {
		ev.Query = st.capture.queryInto(x.qpp[:0:len(x.qpp)], x.qp[:], api, r.URL.RawQuery)
	}
	if info != nil {
		ev.TlsFingerprint, ev.TlsJa3 = info.ja4, info.ja3
	}
	kind, value := event.PrincipalOf(ev)
	ev.Partition = uint32(event.Partition(kind, value, p.partitions))
	x.Req, x.API, x.ClientIP, x.Creds, x.Event, x.Now, x.TLS, x.wire, x.state = r, api, ip, creds, ev, start, state, wire, st
	x.fp = event.ClientFingerprintOf(ev)
	return x
}

// finish completes the event and hands it over. The last look at its
// strings (event.SanitizeEvent, which allocates nothing when they are
// valid) covers what checks wrote: a reason may quote a parameter name or
// an upstream's error.
func (p *Proxy) finish(x *Exchange, start time.Time) {
	ev := x.Event
	ev.DurationNanos = int64(p.now().Sub(start))
	event.SanitizeEvent(ev)
	if p.metrics != nil {
		p.metrics.observe(ev)
	}
	// The event lives on in the emitter's queue inside the exchange's
	// allocation: drop what would keep the request and its state alive.
	x.release()
	p.emit.Emit(ev)
}

// rewrite builds the upstream request. ReverseProxy has already removed
// hop-by-hop headers and inbound X-Forwarded-* before calling it.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	x, _ := pr.In.Context().Value(exchangeKey{}).(*Exchange)
	if x == nil {
		setUpstream(pr, p.state.Load().upstream)
		pr.SetXForwarded()
		return
	}
	setUpstream(pr, x.state.upstream)
	if in := x.state.chain.inject; in != nil {
		in.Apply(x.API, pr.Out.Header)
	}
	// X-Forwarded-For carries the chain apiguard believed, then the peer.
	xff := peerText(pr.In.RemoteAddr)
	if len(x.Event.ForwardedFor) > 0 {
		xff = strings.Join(x.Event.ForwardedFor, ", ") + ", " + xff
	}
	h := pr.Out.Header
	x.setHeader(h, "X-Forwarded-For", xff)
	x.setHeader(h, "X-Forwarded-Host", pr.In.Host)
	proto := "http"
	if x.TLS != nil {
		proto = "https"
	}
	x.setHeader(h, "X-Forwarded-Proto", proto)
	x.setHeader(h, event.HeaderRequestID, x.Event.Id)
}

// peerText is the peer's address as X-Forwarded-For names it (the
// unmapped IP, no port): a view of remote where that is already its text,
// which it is for what net/http puts in RemoteAddr.
func peerText(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return netip.Addr{}.String()
	case a.Is4In6() || a.Zone() != "":
		return a.Unmap().String()
	}
	return host
}

// setUpstream points the outbound request at upstream with the client's
// Host and the client's query exactly as it was sent. ReverseProxy, before
// Rewrite, re-encodes a query that url.ParseQuery refuses (a ";", a "%"
// that starts no escape, more than 10,000 pairs): it drops the pairs it
// cannot parse and sorts the rest, so "?C=M;O=A" would arrive as "?". The
// proxy inspects the query as sent (query.go) and forwards it as sent.
func setUpstream(pr *httputil.ProxyRequest, upstream *url.URL) {
	pr.SetURL(upstream)
	pr.Out.Host = pr.In.Host
	switch q := pr.In.URL.RawQuery; {
	case upstream.RawQuery == "" || q == "":
		pr.Out.URL.RawQuery = upstream.RawQuery + q
	default:
		pr.Out.URL.RawQuery = upstream.RawQuery + "&" + q
	}
}

// logRare logs at most one message every 10 seconds, for events a client
// can cause at will (failed handshakes).
func (p *Proxy) logRare(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := p.lastRare.Load()
	if now-last < int64(10*time.Second) || !p.lastRare.CompareAndSwap(last, now) {
		return
	}
	p.log.Warn(msg, args...)
}

// upstreamError is ReverseProxy's error handler.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	x, _ := r.Context().Value(exchangeKey{}).(*Exchange)
	p.upstreamFailed(w, x, err)
}

// upstreamFailed answers 502 (504 on timeout) and logs at most once a
// second. x is nil for a request without an exchange.
func (p *Proxy) upstreamFailed(w http.ResponseWriter, x *Exchange, err error) {
	p.stats.UpstreamError.Add(1)
	status := http.StatusBadGateway
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		status = http.StatusGatewayTimeout
	}
	if now := time.Now().UnixNano(); now-p.lastErrLog.Load() > int64(time.Second) {
		p.lastErrLog.Store(now)
		p.log.Warn("upstream request failed", "err", err, "upstream_errors_total", p.stats.UpstreamError.Load())
	}
	id := w.Header().Get(event.HeaderRequestID)
	if x != nil {
		x.Event.Reason = "upstream: " + err.Error()
		id = x.Event.Id
	}
	writeProblem(w, &Denial{Status: status, Detail: "The upstream service is unavailable."}, id)
}

// timedTransport records the upstream latency (to response headers) in the exchange.
type timedTransport struct{ rt http.RoundTripper }

func (t timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.rt.RoundTrip(r)
	if x, ok := r.Context().Value(exchangeKey{}).(*Exchange); ok {
		x.Event.UpstreamLatencyNanos = int64(time.Since(start))
	}
	return resp, err
}

// Routes returns the configured route templates, the API label values of
// its metrics.
func (p *Proxy) Routes() []string { return p.state.Load().routes.Configured() }

// modifyResponse sets the headers checks asked for on the upstream's
// answer.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	if x, _ := resp.Request.Context().Value(exchangeKey{}).(*Exchange); x != nil {
		p.shapeResponse(x, resp.Header)
	}
	return nil
}

// shapeResponse applies to the upstream's response fields h what the
// chain asks on both engines: fields stripped, fields that echo an
// injected secret removed, the checks' response fields set.
func (p *Proxy) shapeResponse(x *Exchange, h http.Header) {
	chain := x.state.chain
	for _, k := range chain.stripResp {
		delete(h, k)
	}
	if in := chain.inject; in != nil {
		for k, vs := range h {
			for _, v := range vs {
				if in.Leaks(v) {
					delete(h, k)
					x.Event.Reason = "upstream echoed an injected secret in header " + k + "; removed"
					break
				}
			}
		}
	}
	for k, vs := range x.ResponseHeaders {
		h[k] = vs
	}
}
