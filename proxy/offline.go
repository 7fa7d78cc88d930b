package proxy

import (
	"bytes"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/apiguard/apiguard/event"
)

// OfflineRecorder builds the event the proxy records for a request it did
// not serve itself: a line of an access log, an entry of a HAR file, a raw
// HTTP request. It applies the proxy's own rules, from the same Config:
// route templating (Templater), lenient query reading (queryParams, with
// values only where proxy.capture records them, redacted as the proxy
// redacts them), client identity (Identifier: trusted proxies and
// X-Forwarded-For, API keys, bearer tokens) and partitioning, so that an
// imported request names the same API and principal the proxy would have
// named. It is immutable and safe for concurrent use.
//
// TestOfflineMatchesProxy holds it to what exchange records for the same
// request.
type OfflineRecorder struct {
	routes   *Templater
	ident    *Identifier
	capture  *capturer
	json     JSONLimits
	instance string
}

// NewOfflineRecorder returns an OfflineRecorder for cfg. It checks only
// what it uses (routes and trusted proxies), so a config written for
// another host serves.
func NewOfflineRecorder(cfg Config) (*OfflineRecorder, error) {
	routes, err := NewTemplater(cfg.Routes)
	if err != nil {
		return nil, err
	}
	trusted, err := cfg.trusted()
	if err != nil {
		return nil, err
	}
	return &OfflineRecorder{routes: routes, ident: NewIdentifier(trusted, cfg.APIKeyHeader),
		capture: newCapturer(cfg.Capture, cfg.CaptureQueryValues), json: cfg.Inspection.JSON, instance: cfg.Instance}, nil
}

// Record sets ev (reset first) to the event the proxy records for r,
// received at t, before any check runs, with id and the partition among
// partitions (at least 1). Reusing ev spares an allocation a request when
// the caller encodes ev before the next call.
// r.URL must be set (its Path decoded, RawPath or the escaped form as
// sent, RawQuery raw); r.RemoteAddr is the peer ("ip" or "ip:port"), r.Host
// and r.Header as received, r.ContentLength the body's length or 0. What
// only a live proxy knows is left zero: TLS and header-order
// fingerprints, decision, check, status, response bytes and timings.
func (o *OfflineRecorder) Record(ev *event.RequestEvent, r *http.Request, t time.Time, id string, partitions int) error {
	if partitions < 1 {
		return fmt.Errorf("partitions: %d, want at least 1", partitions)
	}
	ip, chain := o.ident.ClientIP(r)
	creds := o.ident.Credentials(r)
	method := event.ValidUTF8(r.Method)
	ev.Reset()
	ev.Schema = event.SchemaVersion
	ev.Id = id
	ev.TimeUnixNano = t.UnixNano()
	ev.Proxy = o.instance
	ev.Api = o.routes.API(method, r.URL.Path)
	ev.Method = method
	ev.Host = event.ValidUTF8(r.Host)
	ev.Path = clip(r.URL.EscapedPath(), 2048)
	ev.ClientIp = event.ClientIPBytes(ip)
	ev.ForwardedFor = chain
	ev.UserAgent = clip(r.UserAgent(), 512)
	ev.ApiKeyId = creds.KeyID
	ev.TokenId = creds.TokenID
	ev.TokenHash = creds.TokenHash
	ev.Subject = creds.Subject
	ev.Origin = clip(r.Header.Get("Origin"), 256)
	ev.Referer = clip(r.Referer(), 512)
	ev.AcceptLanguage = clip(r.Header.Get("Accept-Language"), 128)
	ev.Auth = event.AuthOutcome_AUTH_MISSING
	if r.ContentLength > 0 {
		ev.RequestBytes = r.ContentLength
	}
	if creds.KeyID != "" || creds.TokenHash != "" {
		ev.Auth = event.AuthOutcome_AUTH_UNSPECIFIED
	}
	if r.URL.RawQuery != "" {
		ev.Query = o.capture.query(ev.Api, r.URL.RawQuery)
	}
	kind, value := event.PrincipalOf(ev)
	ev.Partition = uint32(event.Partition(kind, value, partitions))
	return nil
}

// API returns the route template of method and path (decoded), as the
// proxy names a request's API.
func (o *OfflineRecorder) API(method, path string) string { return o.routes.API(method, path) }

// RecordBody adds to ev, after Record, the body parameters the proxy
// records of body where proxy.capture asks for them on ev's API: the
// fields of a form, the leaves of a JSON document (by their path), with
// values where they are captured, redacted as the proxy redacts them.
// Inspection reads the body in the live proxy; as there, a form that Go's
// url.ParseQuery refuses records nothing (the proxy refuses the request),
// and a JSON document records the leaves read before a fault or a limit
// (inspection.json). Other content types record nothing.
func (o *OfflineRecorder) RecordBody(ev *event.RequestEvent, contentType string, body []byte) {
	_, mode := o.capture.route(ev.Api)
	if mode == CaptureOff || len(body) == 0 {
		return
	}
	capture := &BodyCapture{c: o.capture, values: mode == CaptureValues, ev: ev}
	ctype, _, _ := mime.ParseMediaType(contentType)
	switch {
	case ctype == "application/json" || strings.HasSuffix(ctype, "+json"):
		_ = ScanJSONLeaves(bytes.NewReader(body), o.json, func([]byte, bool) bool { return true }, capture.JSONLeaf)
	case ctype == "application/x-www-form-urlencoded":
		if _, err := url.ParseQuery(string(body)); err == nil {
			capture.Form(string(body))
		}
	}
}
