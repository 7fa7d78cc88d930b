package proxy

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
)

// maxForwardedHops bounds how much of X-Forwarded-For is read.
const maxForwardedHops = 16

// Identifier reads who a request is from. It is immutable and safe for
// concurrent use.
type Identifier struct {
	trusted      []netip.Prefix
	apiKeyHeader string
}

// NewIdentifier returns an Identifier that believes X-Forwarded-For only from
// the trusted prefixes and reads API keys from apiKeyHeader ("" for none).
func NewIdentifier(trusted []netip.Prefix, apiKeyHeader string) *Identifier {
	// Canonical once here, so Header.Get does not canonicalise (and
	// allocate: "X-API-Key" is not canonical) on every request.
	return &Identifier{trusted: trusted, apiKeyHeader: http.CanonicalHeaderKey(apiKeyHeader)}
}

func (id *Identifier) isTrusted(a netip.Addr) bool {
	for _, p := range id.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the client address and the forwarding chain that led to
// it. The peer address is the client unless it is a trusted proxy; then
// X-Forwarded-For is walked from the right, past trusted proxies, and the
// first untrusted address is the client. A malformed hop stops the walk at
// the last good address, so a client cannot forge its way past it.
func (id *Identifier) ClientIP(r *http.Request) (client netip.Addr, chain []string) {
	peer := peerAddr(r.RemoteAddr)
	if !peer.IsValid() || !id.isTrusted(peer) {
		return peer, nil
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	if len(hops) > maxForwardedHops {
		hops = hops[len(hops)-maxForwardedHops:]
	}
	client = peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break
		}
		client = a.Unmap()
		chain = hops[i:]
		if !id.isTrusted(client) {
			break
		}
	}
	return client, chain
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// Credentials are what a request presented, reduced to identifiers that are
// safe to log: never a secret or a whole token.
type Credentials struct {
	KeyID     string
	TokenHash string
	TokenID   string // JWT jti, unverified
	Subject   string // JWT sub, unverified; else the client certificate's identity
	Cert      string // the verified client certificate's identity (mTLS), "cert:…"
}

// Credentials reads the API key and bearer token of r. An API key of the
// form "<id>.<secret>" yields its id (valid UTF-8: other bytes are written
// as %XX, so enforcement entries and events name it the same way); any
// other key yields "h:" and the first
// 16 hex digits of its SHA-256, so the secret never leaves the proxy. A
// bearer token yields its SHA-256 (32 hex digits) and, if it is a JWT, its
// sub and jti, read without verification: verification is a separate check.
func (id *Identifier) Credentials(r *http.Request) Credentials {
	var c Credentials
	if id.apiKeyHeader != "" {
		if k := headerValue(r.Header, id.apiKeyHeader); k != "" {
			c.KeyID = keyID(k)
		}
	}
	if tok, ok := Bearer(headerValue(r.Header, "Authorization")); ok {
		sum := sha256.Sum256([]byte(tok))
		c.TokenHash = hex.EncodeToString(sum[:16])
		c.Subject, c.TokenID = jwtClaims(tok)
	}
	return c
}

// headerSetFingerprint is the header fingerprint where the order is not
// visible (HTTP/2, whose server hands over a map): "hs:" and the first 16
// hex digits of the SHA-256 of the sorted, canonical header names.
func headerSetFingerprint(h http.Header) string {
	// The names and the joined text live on the stack for the usual
	// header set; only the result is allocated.
	var nameArr [32]string
	names := nameArr[:0]
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	var textArr [1024]byte
	text := textArr[:0]
	for i, n := range names {
		if i > 0 {
			text = append(text, ',')
		}
		text = append(text, n...)
	}
	sum := sha256.Sum256(text)
	var out [3 + 16]byte
	copy(out[:], "hs:")
	hex.Encode(out[3:], sum[:8])
	return string(out[:])
}

// headerValue is h.Get for a key already in canonical form: a map
// look-up with no canonicalisation.
func headerValue(h http.Header, canonicalKey string) string {
	if vs := h[canonicalKey]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func keyID(k string) string {
	if kid, secret, ok := strings.Cut(k, "."); ok && kid != "" && secret != "" && len(kid) <= 128 {
		return event.ValidUTF8(kid)
	}
	sum := sha256.Sum256([]byte(k))
	return "h:" + hex.EncodeToString(sum[:8])
}

// Bearer returns the token of an Authorization header value of the
// Bearer scheme (case-insensitive), and false for any other.
func Bearer(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	tok := strings.TrimSpace(h[len(prefix):])
	return tok, tok != ""
}

// maxJWTPayload bounds the JWT payload decoded for sub and jti.
const maxJWTPayload = 8 << 10

func jwtClaims(tok string) (sub, jti string) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(parts[1]) > maxJWTPayload {
		return "", ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", ""
	}
	var claims struct {
		Sub string `json:"sub"`
		JTI string `json:"jti"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return "", ""
	}
	return clip(claims.Sub, 256), clip(claims.JTI, 256)
}

// clip makes s, read from the network, fit an event field: valid UTF-8
// (event.ValidUTF8 writes other bytes as %XX) and at most n bytes, never
// cut inside a character. It allocates only for invalid input.
func clip(s string, n int) string {
	return event.Clip(event.ValidUTF8(s), n)
}

// Identity returns what the Matcher needs of a client.
func (c Credentials) Identity(ip netip.Addr) enforce.Identity {
	return enforce.Identity{IP: ip, KeyID: c.KeyID, TokenID: c.TokenID, TokenHash: c.TokenHash, Subject: c.Subject}
}
