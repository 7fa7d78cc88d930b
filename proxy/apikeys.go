package proxy

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/apiguard/apiguard/event"
)

// AuthName is the name of the authentication check in events.
const AuthName = "auth"

// AuthConfig says what each route requires. Routes not listed require
// Default.
type AuthConfig struct {
	// KeysFile is the API key store (see APIKey); "" for none.
	KeysFile string `yaml:"keys_file"`
	// Default is what routes not listed require: "none" or "api_key".
	Default string               `yaml:"default"`
	Routes  map[string]RouteAuth `yaml:"routes"`
}

// RouteAuth is one route's requirement.
type RouteAuth struct {
	Require string   `yaml:"require"` // none or api_key
	Scopes  []string `yaml:"scopes"`  // all of them, or 403
}

// DefaultAuthConfig requires nothing.
func DefaultAuthConfig() AuthConfig { return AuthConfig{Default: "none"} }

// Validate reports the first bad field by its config key.
func (c AuthConfig) Validate() error {
	req := func(key, v string) error {
		if v != "none" && v != "api_key" {
			return fmt.Errorf("%s: %q, want none or api_key", key, v)
		}
		return nil
	}
	if err := req("proxy.auth.default", c.Default); err != nil {
		return err
	}
	for r, a := range c.Routes {
		if a.Require == "" {
			a.Require = c.Default
		}
		if err := req(fmt.Sprintf("proxy.auth.routes[%q].require", r), a.Require); err != nil {
			return err
		}
		if a.Require == "api_key" && c.KeysFile == "" {
			return fmt.Errorf("proxy.auth.routes[%q]: requires an API key but proxy.auth.keys_file is not set", r)
		}
	}
	if c.Default == "api_key" && c.KeysFile == "" {
		return fmt.Errorf("proxy.auth.default: api_key needs proxy.auth.keys_file")
	}
	return nil
}

// APIKey is one entry of the key store. Only the SHA-256 of the secret is
// stored: secrets are 256 random bits (apiguard keys new), so a fast hash
// cannot be brute-forced, and a stolen store reveals no key.
type APIKey struct {
	ID           string    `yaml:"id"`
	SecretSHA256 string    `yaml:"secret_sha256"`
	Plan         string    `yaml:"plan,omitempty"`
	Scopes       []string  `yaml:"scopes,omitempty"`
	Disabled     bool      `yaml:"disabled,omitempty"`
	Expires      time.Time `yaml:"expires,omitempty"` // zero: never
	hash         []byte
}

// LoadKeys reads a key store: YAML with a "keys" list. It refuses unknown
// fields, duplicate ids and malformed hashes, naming the entry.
func LoadKeys(path string) (map[string]*APIKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("proxy.auth.keys_file: %w", err)
	}
	var doc struct {
		Keys []*APIKey `yaml:"keys"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("key store %s: %w", path, err)
	}
	keys := map[string]*APIKey{}
	for i, k := range doc.Keys {
		switch {
		case k.ID == "" || strings.Contains(k.ID, "."):
			return nil, fmt.Errorf("key store %s: keys[%d].id: %q, want a non-empty id without '.'", path, i, k.ID)
		case keys[k.ID] != nil:
			return nil, fmt.Errorf("key store %s: keys[%d].id: %q appears twice", path, i, k.ID)
		}
		h, err := hex.DecodeString(k.SecretSHA256)
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("key store %s: keys[%d] (%s).secret_sha256: want 64 hex digits", path, i, k.ID)
		}
		k.hash = h
		keys[k.ID] = k
	}
	return keys, nil
}

// NewAPIKey returns a fresh key "<id>.<secret>" and its store entry.
func NewAPIKey(id, plan string, scopes []string) (key string, entry APIKey, err error) {
	if id == "" || strings.Contains(id, ".") {
		return "", APIKey{}, errors.New("key id: want a non-empty id without '.'")
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", APIKey{}, fmt.Errorf("generating a secret: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(secret))
	return id + "." + secret, APIKey{ID: id, SecretSHA256: hex.EncodeToString(sum[:]), Plan: plan, Scopes: scopes}, nil
}

// Auth verifies API keys (id and secret against the store, in constant
// time) and the scopes each route requires. With a key store, a key is
// verified wherever it is sent: a wrong key is refused even on a route
// that requires none.
type Auth struct {
	cfg    AuthConfig
	keys   map[string]*APIKey
	header string
	dummy  []byte
}

// NewAuth loads the key store; cfg must be valid. header is the header
// that carries keys (proxy.api_key_header).
func NewAuth(cfg AuthConfig, header string) (*Auth, error) {
	a := &Auth{cfg: cfg, keys: map[string]*APIKey{}, header: header, dummy: make([]byte, sha256.Size)}
	if cfg.KeysFile != "" {
		keys, err := LoadKeys(cfg.KeysFile)
		if err != nil {
			return nil, err
		}
		a.keys = keys
	}
	return a, nil
}

// Name implements Check.
func (*Auth) Name() string { return AuthName }

func unauthorized(auth event.AuthOutcome, detail, reason string) *Denial {
	return &Denial{Status: http.StatusUnauthorized, Detail: detail, Decision: event.Decision_DECISION_BLOCK,
		Auth: auth, Reason: reason, Headers: http.Header{"Www-Authenticate": {`ApiKey realm="apiguard"`}}}
}

// Check implements Check. Without a key store nothing is verified: keys
// then only name principals, as they do for detection.
func (a *Auth) Check(x *Exchange) *Denial {
	if a.cfg.KeysFile == "" {
		return nil
	}
	route, ok := a.cfg.Routes[x.API]
	require := a.cfg.Default
	if ok && route.Require != "" {
		require = route.Require
	}
	raw := ""
	if a.header != "" {
		raw = x.Req.Header.Get(a.header)
	}
	if raw == "" {
		if require == "api_key" {
			return unauthorized(event.AuthOutcome_AUTH_MISSING, "An API key is required.", "no API key")
		}
		return nil
	}
	id, secret, _ := strings.Cut(raw, ".")
	key := a.keys[id]
	want := a.dummy
	if key != nil {
		want = key.hash
	}
	// Always hash and compare, so an unknown id takes as long as a wrong
	// secret.
	sum := sha256.Sum256([]byte(secret))
	match := subtle.ConstantTimeCompare(sum[:], want) == 1
	switch {
	case key == nil || !match || secret == "":
		return unauthorized(event.AuthOutcome_AUTH_INVALID, "The API key is not valid.", "invalid API key "+clip(x.Creds.KeyID, 64))
	case key.Disabled:
		return unauthorized(event.AuthOutcome_AUTH_REVOKED, "The API key is not valid.", "disabled API key "+key.ID)
	case !key.Expires.IsZero() && !x.Now.Before(key.Expires):
		return unauthorized(event.AuthOutcome_AUTH_EXPIRED, "The API key has expired.", "expired API key "+key.ID)
	}
	x.Event.Auth = event.AuthOutcome_AUTH_OK
	x.Plan = key.Plan
	for _, s := range route.Scopes {
		if !slices.Contains(key.Scopes, s) {
			return &Denial{Status: http.StatusForbidden, Detail: "The API key lacks a scope this API requires.",
				Decision: event.Decision_DECISION_BLOCK, Auth: event.AuthOutcome_AUTH_OK,
				Reason: "API key " + key.ID + " lacks scope " + s}
		}
	}
	return nil
}
