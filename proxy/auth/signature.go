package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apiguard/apiguard/proxy"
)

// signingPrefix names signing secrets in the vault.
const signingPrefix = "signing/"

// SignatureParams is a parsed signature header:
//
//	keyId=partner-7, ts=1763892000, nonce=4f2a9c…, headers=host;content-type, sig=<base64 HMAC>
type SignatureParams struct {
	KeyID   string
	TS      int64
	Nonce   string
	Headers []string // lower case, in signing order
	Sig     []byte
}

// ParseSignature parses a signature header. It refuses duplicates,
// unknown or missing parameters, and out-of-range values, naming the
// parameter.
func ParseSignature(h string) (SignatureParams, error) {
	var p SignatureParams
	if len(h) > 4096 {
		return p, errors.New("signature header longer than 4096 bytes")
	}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(h, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return p, fmt.Errorf("signature parameter %q: want name=value", clip(part, 40))
		}
		k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"`)
		if seen[k] {
			return p, fmt.Errorf("signature parameter %s: given twice", clip(k, 20))
		}
		seen[k] = true
		switch k {
		case "keyId":
			if v == "" || len(v) > 128 || strings.ContainsAny(v, "/ ") {
				return p, errors.New("signature keyId: want 1 to 128 characters without '/' or space")
			}
			p.KeyID = v
		case "ts":
			ts, err := strconv.ParseInt(v, 10, 64)
			if err != nil || ts <= 0 || len(v) > 12 {
				return p, errors.New("signature ts: want Unix seconds")
			}
			p.TS = ts
		case "nonce":
			if len(v) < 16 || len(v) > 128 || strings.ContainsAny(v, " \t") {
				return p, errors.New("signature nonce: want 16 to 128 characters without space")
			}
			p.Nonce = v
		case "headers":
			for n := range strings.SplitSeq(v, ";") {
				n = strings.ToLower(strings.TrimSpace(n))
				if n == "" || len(p.Headers) == 32 || slices.Contains(p.Headers, n) {
					return p, errors.New("signature headers: want up to 32 distinct names separated by ';'")
				}
				p.Headers = append(p.Headers, n)
			}
		case "sig":
			sig, err := base64.StdEncoding.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return p, errors.New("signature sig: want a base64 HMAC-SHA256")
			}
			p.Sig = sig
		default:
			return p, fmt.Errorf("signature parameter %q: unknown", clip(k, 20))
		}
	}
	for _, need := range []string{"keyId", "ts", "nonce", "sig"} {
		if !seen[need] {
			return p, fmt.Errorf("signature parameter %s: missing", need)
		}
	}
	return p, nil
}

// String formats the parameters as a header value.
func (p SignatureParams) String() string {
	hs := ""
	if len(p.Headers) > 0 {
		hs = ", headers=" + strings.Join(p.Headers, ";")
	}
	return fmt.Sprintf("keyId=%s, ts=%d, nonce=%s%s, sig=%s", p.KeyID, p.TS, p.Nonce, hs, base64.StdEncoding.EncodeToString(p.Sig))
}

// CanonicalRequest is the string a signature covers, lines joined by LF:
//
//	APIGUARD-HMAC-SHA256
//	<method>
//	<escaped path>
//	<query: pairs sorted by name then value, each escaped, joined by &>
//	<one line per signed header, in the order listed: name:value, values trimmed and joined by ",">
//	<ts>
//	<nonce>
//	<hex SHA-256 of the body>
func CanonicalRequest(r *http.Request, headers []string, ts int64, nonce string, bodySHA256 []byte) string {
	var b strings.Builder
	b.WriteString("APIGUARD-HMAC-SHA256\n")
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(r.URL.EscapedPath())
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery))
	b.WriteByte('\n')
	for _, h := range headers {
		var v string
		if h == "host" {
			v = r.Host
		} else {
			vs := r.Header.Values(h)
			for i := range vs {
				vs[i] = strings.TrimSpace(vs[i])
			}
			v = strings.Join(vs, ",")
		}
		b.WriteString(h)
		b.WriteByte(':')
		b.WriteString(v)
		b.WriteByte('\n')
	}
	b.WriteString(strconv.FormatInt(ts, 10))
	b.WriteByte('\n')
	b.WriteString(nonce)
	b.WriteByte('\n')
	b.WriteString(hex.EncodeToString(bodySHA256))
	return b.String()
}

func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	q, _ := url.ParseQuery(raw)
	pairs := make([]string, 0, len(q))
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, url.QueryEscape(k)+"="+url.QueryEscape(v))
		}
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "&")
}

// SignRequest signs r for a client: it hashes body (which the caller also
// sends), picks a random nonce and sets the signature header. headers are
// the lower-case names to sign; "host" is always among them.
func SignRequest(r *http.Request, header, keyID string, secret, body []byte, headers []string, now time.Time) error {
	if !slices.Contains(headers, "host") {
		headers = append([]string{"host"}, headers...)
	}
	var n [16]byte
	if _, err := rand.Read(n[:]); err != nil {
		return fmt.Errorf("signing request: %w", err)
	}
	sum := sha256.Sum256(body)
	p := SignatureParams{KeyID: keyID, TS: now.Unix(), Nonce: hex.EncodeToString(n[:]), Headers: headers}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(CanonicalRequest(r, headers, p.TS, p.Nonce, sum[:])))
	p.Sig = mac.Sum(nil)
	r.Header.Set(header, p.String())
	return nil
}

// verifySignature checks x's signature against secret. It reads the body
// (at most maxBody bytes) to hash it and puts it back.
func verifySignature(x *proxy.Exchange, p SignatureParams, secret []byte, cfg proxy.SignatureConfig, maxBody int64) (reason string, ok bool) {
	if d := x.Now.Sub(time.Unix(p.TS, 0)); d > cfg.Skew || d < -cfg.Skew {
		return fmt.Sprintf("signature timestamp %s off the proxy's clock", d.Round(time.Second)), false
	}
	for _, need := range cfg.SignedHeaders {
		if !slices.Contains(p.Headers, strings.ToLower(need)) {
			return "signature does not cover header " + need, false
		}
	}
	r := x.Req
	// The canonical query covers what url.ParseQuery reads; a pair with a
	// ";" or a bad escape, which it leaves out, would go upstream unsigned.
	if err := proxy.StrictQuery(r.URL.RawQuery); err != nil {
		return "signed request's " + err.Error() + ": a signed query must parse strictly", false
	}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			return "reading body to verify signature: " + err.Error(), false
		}
		if int64(len(body)) > maxBody {
			return fmt.Sprintf("body over %d bytes", maxBody), false
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	sum := sha256.Sum256(body)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(CanonicalRequest(r, p.Headers, p.TS, p.Nonce, sum[:])))
	if !hmac.Equal(mac.Sum(nil), p.Sig) {
		return "bad signature for key " + p.KeyID, false
	}
	return "", true
}

// NonceCache remembers signature nonces until they can no longer be used
// (twice the skew), so a captured signed request cannot be replayed. It is
// sharded, bounded, and safe for concurrent use; the zero value is not
// usable, call NewNonceCache.
type NonceCache struct {
	seed   maphash.Seed
	shards [64]nonceShard
	per    int
}

type nonceShard struct {
	mu    sync.Mutex
	seen  map[string]int64 // key → expiry, Unix nanoseconds
	order []nonceEntry     // insertion order = expiry order (one TTL)
	head  int
}

type nonceEntry struct {
	key    string
	expiry int64
}

// NewNonceCache returns a cache that holds up to max live nonces.
func NewNonceCache(max int) *NonceCache {
	c := &NonceCache{seed: maphash.MakeSeed(), per: max/64 + 1}
	for i := range c.shards {
		c.shards[i].seen = map[string]int64{}
	}
	return c
}

// errNoncesFull is returned when the cache is full of live nonces.
var errNoncesFull = errors.New("nonce cache full")

// Add records key until now+ttl. It reports false if key is already
// recorded and live (a replay), and errNoncesFull if no room is left.
func (c *NonceCache) Add(key string, now time.Time, ttl time.Duration) (bool, error) {
	s := &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
	t := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	// Expire from the front: entries share one TTL, so the oldest
	// inserted expire first. (A reload with another skew only delays
	// expiry of a few entries.)
	for s.head < len(s.order) && s.order[s.head].expiry <= t {
		e := s.order[s.head]
		if s.seen[e.key] == e.expiry {
			delete(s.seen, e.key)
		}
		s.order[s.head] = nonceEntry{}
		s.head++
	}
	if s.head > len(s.order)/2 && s.head > 1024 {
		s.order = append(s.order[:0], s.order[s.head:]...)
		s.head = 0
	}
	if exp, ok := s.seen[key]; ok && exp > t {
		return false, nil
	}
	if len(s.seen) >= c.per {
		return false, errNoncesFull
	}
	exp := t + int64(ttl)
	s.seen[key] = exp
	s.order = append(s.order, nonceEntry{key, exp})
	return true, nil
}

// Len returns the number of nonces held.
func (c *NonceCache) Len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += len(c.shards[i].seen)
		c.shards[i].mu.Unlock()
	}
	return n
}
