package proxy

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"
)

func TestClientIP(t *testing.T) {
	id := NewIdentifier([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "")
	tests := []struct {
		name, remote, xff, want string
		chain                   []string
	}{
		{"direct client, forged header ignored", "203.0.113.9:5000", "1.2.3.4", "203.0.113.9", nil},
		{"trusted proxy", "10.0.0.2:443", "198.51.100.7", "198.51.100.7", []string{"198.51.100.7"}},
		{"two trusted hops", "10.0.0.2:443", "198.51.100.7, 10.1.1.1", "198.51.100.7", []string{"198.51.100.7", "10.1.1.1"}},
		{"client cannot prepend", "10.0.0.2:443", "6.6.6.6, 198.51.100.7", "198.51.100.7", []string{"198.51.100.7"}},
		{"malformed hop stops the walk", "10.0.0.2:443", "6.6.6.6, garbage, 10.1.1.1", "10.1.1.1", []string{"10.1.1.1"}},
		{"no header from trusted proxy", "10.0.0.2:443", "", "10.0.0.2", nil},
		{"ipv6 peer", "[2001:db8::5]:80", "", "2001:db8::5", nil},
		{"mapped v4 peer", "[::ffff:203.0.113.9]:80", "", "203.0.113.9", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			got, chain := id.ClientIP(r)
			if got.String() != tt.want || !slices.Equal(chain, tt.chain) {
				t.Errorf("ClientIP = %s %v, want %s %v", got, chain, tt.want, tt.chain)
			}
		})
	}
}

func TestCredentials(t *testing.T) {
	id := NewIdentifier(nil, "X-API-Key")
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"alice","jti":"tok-1","exp":1}`))
	jwt := "eyJhbGciOiJIUzI1NiJ9." + payload + ".c2ln"
	tests := []struct {
		name, key, auth string
		want            Credentials
	}{
		{"none", "", "", Credentials{}},
		{"key with id", "partner-7.s3cr3t", "", Credentials{KeyID: "partner-7"}},
		{"opaque key is hashed", "s3cr3t-opaque", "", Credentials{KeyID: "h:1604ccda1f7cf27b"}}, // sha256 prefix
		{"jwt", "", "Bearer " + jwt, Credentials{TokenHash: tokenHash(jwt), Subject: "alice", TokenID: "tok-1"}},
		{"lower-case scheme", "", "bearer " + jwt, Credentials{TokenHash: tokenHash(jwt), Subject: "alice", TokenID: "tok-1"}},
		{"opaque token", "", "Bearer abc", Credentials{TokenHash: tokenHash("abc")}},
		{"bad jwt payload", "", "Bearer a.!!!.c", Credentials{TokenHash: tokenHash("a.!!!.c")}},
		{"basic auth ignored", "", "Basic dTpw", Credentials{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.key != "" {
				r.Header.Set("X-API-Key", tt.key)
			}
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			if got := id.Credentials(r); got != tt.want {
				t.Errorf("Credentials = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// tokenHash is the documented form: SHA-256, first 16 bytes, hex.
func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:16])
}
