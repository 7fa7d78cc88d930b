package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

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
