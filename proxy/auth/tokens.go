package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

// TokensName is the name of the proxy token check in events.
const TokensName = "tokens"

// TokenService issues and checks proxy tokens. As a Check it answers its
// three endpoints (attestation exchange, token exchange, JWKS) and refuses
// a proxy token presented from another origin or client fingerprint than
// the one it was issued to. It runs after the enforcement, decoy, bot and
// origin checks, so blocked clients, automation and foreign origins get
// no token.
type TokenService struct {
	cfg  proxy.TokensConfig
	keys *TokenKeys
	att  Attestor
	jwt  *JWTVerifier
}

// NewTokenService returns the service; jwt verifies tokens presented for
// exchange (it must trust the service's Issuer, see AddIssuer).
func NewTokenService(cfg proxy.TokensConfig, keys *TokenKeys, att Attestor, v *JWTVerifier) *TokenService {
	return &TokenService{cfg: cfg, keys: keys, att: att, jwt: v}
}

// Issuer is the JWT issuer entry for the service's own tokens.
func (s *TokenService) Issuer() proxy.JWTIssuer {
	return proxy.JWTIssuer{Issuer: s.cfg.Issuer, Audience: []string{s.cfg.Audience}, Algorithms: []string{string(jose.EdDSA)}}
}

// Name implements proxy.Check.
func (*TokenService) Name() string { return TokensName }

// proxyClaims are the claims a proxy token adds to the registered ones.
type proxyClaims struct {
	Origin string `json:"org,omitempty"`
	// Cnf binds the token to a client (RFC 7800 style): the binding
	// fingerprint's hash.
	Cnf   map[string]string `json:"cnf,omitempty"`
	Scope string            `json:"scope,omitempty"`
}

// binding is what a proxy token is bound to: the JA4 where TLS terminates
// here, the User-Agent and the Accept-Language, hashed. Without TLS at the
// proxy the binding is only what a thief can copy; terminate TLS here for
// one that resists.
func binding(x *proxy.Exchange) string {
	h := sha256.New()
	h.Write([]byte(x.Event.TlsFingerprint))
	h.Write([]byte{0})
	h.Write([]byte(x.Req.UserAgent()))
	h.Write([]byte{0})
	h.Write([]byte(x.Req.Header.Get("Accept-Language")))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func answer(status int, v any, headers http.Header) *proxy.Denial {
	body, _ := json.Marshal(v)
	if headers == nil {
		headers = http.Header{}
	}
	headers.Set("Cache-Control", "no-store")
	d := &proxy.Denial{Status: status, RawBody: body, RawType: "application/json", Headers: headers, Answer: status < 400}
	if status >= 400 {
		d.Decision = event.Decision_DECISION_BLOCK
	}
	return d
}

func oauthError(status int, code, desc, reason string) *proxy.Denial {
	d := answer(status, map[string]string{"error": code, "error_description": desc}, nil)
	d.Reason = reason
	return d
}

// Check implements proxy.Check.
func (s *TokenService) Check(x *proxy.Exchange) *proxy.Denial {
	switch path := x.Req.URL.Path; {
	case path == s.cfg.JWKSPath && x.Req.Method == http.MethodGet:
		return answer(http.StatusOK, s.keys.PublicSet(x.Now), nil)
	case path == s.cfg.Path:
		return s.issueForAttestation(x)
	case path == s.cfg.ExchangePath:
		return s.exchange(x)
	}
	raw, ok := proxy.Bearer(x.Req.Header.Get("Authorization"))
	if !ok {
		return nil
	}
	tok, err := s.jwt.Verify(raw, x.Now)
	if err != nil {
		return nil // the auth check refuses it and says why
	}
	x.Token = tok // verified once: the auth check uses it
	if tok.Issuer != s.cfg.Issuer {
		return nil
	}
	issuedTo, _ := tok.Claims["org"].(string)
	cnf, _ := tok.Claims["cnf"].(map[string]any)
	fp, _ := cnf["fp"].(string)
	origin := x.Req.Header.Get("Origin")
	switch {
	case issuedTo != origin:
		return &proxy.Denial{Status: http.StatusUnauthorized, Detail: "The token was issued to another client.",
			Decision: event.Decision_DECISION_BLOCK, Auth: event.AuthOutcome_AUTH_INVALID,
			Reason:  fmt.Sprintf("proxy token %s for origin %q used from origin %q", tok.ID, clip(issuedTo, 100), clip(origin, 100)),
			Headers: http.Header{"Www-Authenticate": {bearerChallenge + `, error="invalid_token"`}}}
	case fp != binding(x):
		return &proxy.Denial{Status: http.StatusUnauthorized, Detail: "The token was issued to another client.",
			Decision: event.Decision_DECISION_BLOCK, Auth: event.AuthOutcome_AUTH_INVALID,
			Reason:  "proxy token " + tok.ID + " used from another client fingerprint",
			Headers: http.Header{"Www-Authenticate": {bearerChallenge + `, error="invalid_token"`}}}
	}
	x.Token = tok
	return nil
}

// issueForAttestation answers POST {path} with attestation=<token> (form
// or JSON): the attestor is asked, and a token bound to the caller is
// issued.
func (s *TokenService) issueForAttestation(x *proxy.Exchange) *proxy.Denial {
	if x.Req.Method != http.MethodPost {
		return oauthError(http.StatusMethodNotAllowed, "invalid_request", "POST an attestation.", "token endpoint: "+x.Req.Method)
	}
	att, err := formValue(x.Req, "attestation")
	if err != nil || att == "" {
		return oauthError(http.StatusBadRequest, "invalid_request", "An attestation is required.", "token endpoint: no attestation")
	}
	ctx, cancel := context.WithTimeout(x.Req.Context(), s.cfg.SiteVerify.Timeout)
	defer cancel()
	a, err := s.att.Verify(ctx, att, x.ClientIP.String())
	var refused *errAttestation
	switch {
	case errors.As(err, &refused):
		return oauthError(http.StatusForbidden, "access_denied", "The attestation was not accepted.", "token endpoint: "+refused.reason)
	case err != nil:
		return oauthError(http.StatusServiceUnavailable, "temporarily_unavailable", "Attestation cannot be checked now.", "token endpoint: "+clip(err.Error(), 200))
	}
	var sid [12]byte
	_, _ = rand.Read(sid[:])
	tok, exp, err := s.issue(x, "anon:"+hex.EncodeToString(sid[:]), s.cfg.Scopes, x.Now.Add(s.cfg.TTL))
	if err != nil {
		return oauthError(http.StatusInternalServerError, "server_error", "No token could be issued.", "token endpoint: "+err.Error())
	}
	x.Event.Reason = fmt.Sprintf("proxy token issued (attestation score %.2f)", a.Score)
	return tokenAnswer(tok, exp.Sub(x.Now), s.cfg.Scopes)
}

// exchange answers RFC 8693 token exchange: a valid token (any trusted
// issuer) for a proxy token with the same or fewer scopes, bound to the
// caller, expiring no later than the token it replaces.
func (s *TokenService) exchange(x *proxy.Exchange) *proxy.Denial {
	if x.Req.Method != http.MethodPost {
		return oauthError(http.StatusMethodNotAllowed, "invalid_request", "POST a token exchange.", "exchange: "+x.Req.Method)
	}
	f, err := postForm(x.Req)
	if err != nil {
		return oauthError(http.StatusBadRequest, "invalid_request", "The form is malformed.", "exchange: "+clip(err.Error(), 100))
	}
	if f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" {
		return oauthError(http.StatusBadRequest, "unsupported_grant_type", "Use the token-exchange grant.", "exchange: grant_type "+clip(f.Get("grant_type"), 80))
	}
	subject, err := s.jwt.Verify(f.Get("subject_token"), x.Now)
	if err != nil {
		return oauthError(http.StatusBadRequest, "invalid_grant", "The subject token is not valid.", "exchange: "+err.Error())
	}
	want := strings.Fields(f.Get("scope"))
	for _, sc := range want {
		if !slices.Contains(subject.Scopes, sc) {
			return oauthError(http.StatusBadRequest, "invalid_scope", "A scope was requested that the subject token lacks.",
				"exchange: scope "+clip(sc, 60)+" not held by "+subject.Subject)
		}
	}
	if len(want) == 0 {
		want = subject.Scopes
	}
	exp := x.Now.Add(s.cfg.TTL)
	if e, ok := subject.Claims["exp"].(float64); ok && time.Unix(int64(e), 0).Before(exp) {
		exp = time.Unix(int64(e), 0)
	}
	tok, exp, err := s.issue(x, subject.Subject, want, exp)
	if err != nil {
		return oauthError(http.StatusInternalServerError, "server_error", "No token could be issued.", "exchange: "+err.Error())
	}
	x.Event.Subject = subject.Subject
	x.Event.Reason = "token exchanged for scopes " + strings.Join(want, " ")
	return tokenAnswer(tok, exp.Sub(x.Now), want)
}

func (s *TokenService) issue(x *proxy.Exchange, sub string, scopes []string, exp time.Time) (string, time.Time, error) {
	kid, key := s.keys.Current(x.Now)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), kid))
	if err != nil {
		return "", exp, err
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	std := jwt.Claims{Issuer: s.cfg.Issuer, Subject: sub, Audience: jwt.Audience{s.cfg.Audience}, ID: hex.EncodeToString(jti[:]),
		IssuedAt: jwt.NewNumericDate(x.Now), NotBefore: jwt.NewNumericDate(x.Now), Expiry: jwt.NewNumericDate(exp)}
	pc := proxyClaims{Origin: x.Req.Header.Get("Origin"), Cnf: map[string]string{"fp": binding(x)}, Scope: strings.Join(scopes, " ")}
	tok, err := jwt.Signed(signer).Claims(std).Claims(pc).Serialize()
	return tok, exp, err
}

func tokenAnswer(tok string, ttl time.Duration, scopes []string) *proxy.Denial {
	return answer(http.StatusOK, map[string]any{
		"access_token": tok, "token_type": "Bearer", "expires_in": int(ttl.Seconds()),
		"issued_token_type": "urn:ietf:params:oauth:token-type:jwt", "scope": strings.Join(scopes, " "),
	}, nil)
}

// maxFormBytes bounds the body of a token endpoint's request.
const maxFormBytes = 16 << 10

// formValue reads one field of a small form or JSON body.
func formValue(r *http.Request, name string) (string, error) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var m map[string]any
		if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxFormBytes)).Decode(&m); err != nil {
			return "", err
		}
		v, _ := m[name].(string)
		return v, nil
	}
	f, err := postForm(r)
	return f.Get(name), err
}

// postForm reads what r.ParseForm puts in PostForm (the fields of a URL-
// encoded body, nothing for other types), at most maxFormBytes, from this
// request's body alone. It leaves r's Form and PostForm alone: the native
// engine reuses a connection's *http.Request, and ParseForm does nothing
// when PostForm is already set, so it would answer with the fields of the
// connection's previous request.
func postForm(r *http.Request) (url.Values, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	ct, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return url.Values{}, err
	}
	if ct != "application/x-www-form-urlencoded" {
		return url.Values{}, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	if err != nil {
		return url.Values{}, err
	}
	if len(b) > maxFormBytes {
		return url.Values{}, errors.New("request body too large")
	}
	return url.ParseQuery(string(b))
}

// Interface guards
var _ proxy.Check = (*TokenService)(nil)
