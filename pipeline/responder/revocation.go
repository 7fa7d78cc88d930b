package responder

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiguard/apiguard/event"
)

// RevocationConfig is where revoked tokens are reported: the issuers'
// OAuth 2.0 token revocation endpoints (RFC 7009).
type RevocationConfig struct {
	// Issuers are the identity providers to tell; none: revocations stay
	// within apiguard's proxies.
	Issuers []IssuerConfig `yaml:"issuers"`
	// QueueSize bounds the revocations waiting for an issuer; past it a
	// revocation is dropped, counted and audited.
	QueueSize int `yaml:"queue_size"`
	// MaxAttempts is how many times one revocation is tried.
	MaxAttempts int `yaml:"max_attempts"`
	// Backoff is the wait before the first retry, doubled for each next.
	Backoff time.Duration `yaml:"backoff"`
	// Timeout bounds one call.
	Timeout time.Duration `yaml:"timeout"`
	// Workers is how many calls are made at once.
	Workers int `yaml:"workers"`
}

// IssuerConfig is one identity provider's revocation endpoint.
type IssuerConfig struct {
	// Name identifies the issuer in audit actions and metrics.
	Name string `yaml:"name"`
	// Endpoint is the revocation endpoint: https, or http on a loopback
	// address only (the client secret travels with every call).
	Endpoint string `yaml:"endpoint"`
	// ClientID is apiguard's client id at the issuer.
	ClientID string `yaml:"client_id"`
	// ClientSecretEnv names the environment variable holding the client
	// secret (never in the file).
	ClientSecretEnv string `yaml:"client_secret_env"`
	// Auth is the client authentication: client_secret_basic (default) or
	// client_secret_post (RFC 6749 section 2.3.1).
	Auth string `yaml:"auth"`
	// TokenTypeHint is sent as token_type_hint: access_token (default) or
	// refresh_token.
	TokenTypeHint string `yaml:"token_type_hint"`
	// APIs, when set, limit the issuer to anomalies on these API templates
	// or patterns (as match.apis), for deployments with several issuers.
	APIs []string `yaml:"apis,omitempty,flow"`
}

// DefaultRevocationConfig has no issuers.
func DefaultRevocationConfig() RevocationConfig {
	return RevocationConfig{QueueSize: 1000, MaxAttempts: 5, Backoff: time.Second, Timeout: 5 * time.Second, Workers: 2}
}

// Validate reports the first bad field by its config key. With getenv, the
// client secrets must be set in the environment it reads (the pipeline,
// which calls the issuers, checks so at start); with nil, only that each
// issuer names its variable (every other process that reads the config).
func (c RevocationConfig) Validate(getenv func(string) string) error {
	switch {
	case c.QueueSize < 1 || c.QueueSize > 1e6:
		return fmt.Errorf("responder.revocation.queue_size: %d, want 1 to 1000000", c.QueueSize)
	case c.MaxAttempts < 1 || c.MaxAttempts > 20:
		return fmt.Errorf("responder.revocation.max_attempts: %d, want 1 to 20", c.MaxAttempts)
	case c.Backoff < 10*time.Millisecond || c.Backoff > time.Hour:
		return fmt.Errorf("responder.revocation.backoff: %s, want 10ms to 1h", c.Backoff)
	case c.Timeout < 10*time.Millisecond || c.Timeout > time.Minute:
		return fmt.Errorf("responder.revocation.timeout: %s, want 10ms to 1m", c.Timeout)
	case c.Workers < 1 || c.Workers > 64:
		return fmt.Errorf("responder.revocation.workers: %d, want 1 to 64", c.Workers)
	}
	names := map[string]bool{}
	for i, is := range c.Issuers {
		where := fmt.Sprintf("responder.revocation.issuers[%d] %q", i, is.Name)
		if is.Name == "" || names[is.Name] {
			return fmt.Errorf("%s: name: want a unique name", where)
		}
		names[is.Name] = true
		u, err := url.Parse(is.Endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("%s: endpoint: %q, want an absolute https URL", where, is.Endpoint)
		}
		if u.Scheme == "http" && !loopback(u.Hostname()) {
			return fmt.Errorf("%s: endpoint: %q: http only to a loopback address (the client secret travels with every call)", where, is.Endpoint)
		}
		if is.ClientID == "" {
			return fmt.Errorf("%s: client_id: empty", where)
		}
		if is.ClientSecretEnv == "" || (getenv != nil && getenv(is.ClientSecretEnv) == "") {
			return fmt.Errorf("%s: client_secret_env: %q is not set in the environment", where, is.ClientSecretEnv)
		}
		switch is.Auth {
		case "", "client_secret_basic", "client_secret_post":
		default:
			return fmt.Errorf("%s: auth: %q, want client_secret_basic or client_secret_post", where, is.Auth)
		}
		switch is.TokenTypeHint {
		case "", "access_token", "refresh_token":
		default:
			return fmt.Errorf("%s: token_type_hint: %q, want access_token or refresh_token", where, is.TokenTypeHint)
		}
		for _, a := range is.APIs {
			if _, err := path.Match(a, ""); err != nil {
				return fmt.Errorf("%s: apis: bad pattern %q: %w", where, a, err)
			}
		}
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Revocation is one token to report to its issuer.
type Revocation struct {
	// Token is the token the proxy identifies it by: its jti, or for an
	// opaque token its hash. apiguard never stores bearer tokens, so an
	// issuer must accept its identifier at the revocation endpoint.
	Token string
	// API is the API of the anomaly (selects the issuer).
	API string
	// ActionID is the id of the revoke action that this reports on.
	ActionID string
	// AnomalyID is the anomaly behind it.
	AnomalyID string
}

// RevokerStats are the revoker's counters.
type RevokerStats struct {
	Revoked atomic.Uint64 // an issuer answered 200
	Failed  atomic.Uint64 // given up: a permanent refusal or MaxAttempts spent
	Retries atomic.Uint64 // calls retried
	Dropped atomic.Uint64 // the queue was full
}

// Revoker reports revoked tokens to their issuers' RFC 7009 endpoints
// from a bounded queue, with retries and backoff, and records each
// outcome on the audit stream as a revoke action of actor
// "issuer:<name>", dry-run (it changes no enforcement entry), whose reason
// says what the issuer answered. Enqueue never blocks; Run does the calls.
// Build it with NewRevoker.
type Revoker struct {
	cfg     RevocationConfig
	secrets map[string]string
	client  *http.Client
	audit   AuditSink
	now     func() time.Time
	log     *slog.Logger
	queue   chan Revocation
	stats   RevokerStats
	// sleep waits d or until ctx ends; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
	mu    sync.Mutex
	sent  map[string]bool // action ids queued, so a retried anomaly is reported once
}

// NewRevoker returns a revoker; cfg must be valid with getenv.
func NewRevoker(cfg RevocationConfig, getenv func(string) string, audit AuditSink, now func() time.Time, log *slog.Logger) *Revoker {
	r := &Revoker{cfg: cfg, secrets: map[string]string{}, client: &http.Client{Timeout: cfg.Timeout},
		audit: audit, now: now, log: log, queue: make(chan Revocation, cfg.QueueSize), sleep: sleepCtx, sent: map[string]bool{}}
	for _, is := range cfg.Issuers {
		r.secrets[is.Name] = getenv(is.ClientSecretEnv)
	}
	return r
}

// Stats returns the live counters.
func (r *Revoker) Stats() *RevokerStats { return &r.stats }

// Enqueue queues v for its issuers and returns at once. With no issuer for
// v it does nothing; with the queue full v is dropped, counted, logged and
// audited, and Enqueue returns false.
func (r *Revoker) Enqueue(ctx context.Context, v Revocation) bool {
	if len(r.issuersFor(v.API)) == 0 {
		return true
	}
	r.mu.Lock()
	if r.sent[v.ActionID] {
		r.mu.Unlock()
		return true
	}
	if len(r.sent) >= 4*r.cfg.QueueSize {
		clear(r.sent) // bounded: a retry is seconds after its first try
	}
	r.sent[v.ActionID] = true
	r.mu.Unlock()
	select {
	case r.queue <- v:
		return true
	default:
	}
	r.stats.Dropped.Add(1)
	r.log.Warn("revocation queue full, not reporting a revoked token to its issuer", "action", v.ActionID, "queue_size", r.cfg.QueueSize)
	r.record(ctx, v, "queue", fmt.Sprintf("not reported to the issuer: the revocation queue of %d is full", r.cfg.QueueSize))
	return false
}

// Run makes the calls until ctx ends, with cfg.Workers at once; the
// revocations still queued then are dropped (the proxies' entries are
// already in force). It returns nil.
func (r *Revoker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case v := <-r.queue:
					for _, is := range r.issuersFor(v.API) {
						r.revoke(ctx, is, v)
					}
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

func (r *Revoker) issuersFor(api string) []IssuerConfig {
	var out []IssuerConfig
	for _, is := range r.cfg.Issuers {
		if len(is.APIs) == 0 {
			out = append(out, is)
			continue
		}
		for _, p := range is.APIs {
			if ok, _ := path.Match(p, api); ok || p == api {
				out = append(out, is)
				break
			}
		}
	}
	return out
}

// errPermanent marks an answer that a retry cannot change.
var errPermanent = errors.New("not retried")

// revoke reports v to is, retrying, and audits the outcome.
func (r *Revoker) revoke(ctx context.Context, is IssuerConfig, v Revocation) {
	wait := r.cfg.Backoff
	var err error
	attempt := 1
	for ; ; attempt++ {
		err = r.call(ctx, is, v.Token)
		if err == nil || errors.Is(err, errPermanent) || attempt >= r.cfg.MaxAttempts || ctx.Err() != nil {
			break
		}
		r.stats.Retries.Add(1)
		r.log.Debug("revocation failed, retrying", "issuer", is.Name, "attempt", attempt, "err", err)
		if r.sleep(ctx, wait) != nil {
			break
		}
		wait *= 2
	}
	if err == nil {
		r.stats.Revoked.Add(1)
		r.record(ctx, v, is.Name, fmt.Sprintf("revoked at the issuer %s (RFC 7009, %s) after %d attempt(s)", is.Name, is.Endpoint, attempt))
		return
	}
	r.stats.Failed.Add(1)
	r.log.Warn("revocation at the issuer failed", "issuer", is.Name, "attempts", attempt, "err", err)
	r.record(ctx, v, is.Name, fmt.Sprintf("not revoked at the issuer %s (%s) after %d attempt(s): %v", is.Name, is.Endpoint, attempt, err))
}

// call makes one RFC 7009 request.
func (r *Revoker) call(ctx context.Context, is IssuerConfig, token string) error {
	form := url.Values{"token": {token}}
	hint := is.TokenTypeHint
	if hint == "" {
		hint = "access_token"
	}
	form.Set("token_type_hint", hint)
	secret := r.secrets[is.Name]
	if is.Auth == "client_secret_post" {
		form.Set("client_id", is.ClientID)
		form.Set("client_secret", secret)
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, is.Endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("building the request: %w: %w", err, errPermanent)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if is.Auth == "" || is.Auth == "client_secret_basic" {
		// RFC 6749 2.3.1: the id and secret are form-encoded, then Basic.
		cred := url.QueryEscape(is.ClientID) + ":" + url.QueryEscape(secret)
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cred)))
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("calling the endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("the endpoint answered %d", resp.StatusCode)
	default:
		return fmt.Errorf("the endpoint answered %d %s: %w", resp.StatusCode, oneLineBody(body), errPermanent)
	}
}

func oneLineBody(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// record audits an outcome.
func (r *Revoker) record(ctx context.Context, v Revocation, issuer, reason string) {
	now := r.now()
	act := &event.Action{Schema: event.SchemaVersion, Id: event.HashID(now, "revocation", v.ActionID, issuer),
		TimeUnixNano: now.UnixNano(), Kind: event.ActionKind_ACTION_REVOKE,
		Target: &event.Principal{Kind: event.KindToken, Value: v.Token}, Reason: reason, AnomalyId: v.AnomalyID,
		Actor: "issuer:" + issuer, DryRun: true}
	if err := r.audit.WriteAction(ctx, act); err != nil {
		r.log.Warn("auditing a revocation's outcome", "action", v.ActionID, "err", err)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
