package auth

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MasterKeySize is the AES-256 key size.
const MasterKeySize = 32

// Vault is the secret store: upstream credentials and request-signing
// secrets, each sealed with AES-256-GCM under a master key that never
// touches the disk next to it. The secret's name is the additional data,
// so a sealed value cannot be moved to another name. A Vault in memory
// holds sealed values only; Open returns a plaintext on demand.
//
// The file is YAML:
//
//	version: 1
//	key_id: 5f1c…        # SHA-256 of the master key, first 8 bytes: detects a wrong key
//	secrets:
//	  - name: upstream/payments
//	    sealed: <base64 nonce ‖ ciphertext ‖ tag>
//	    updated: 2026-11-23T10:00:00Z
type Vault struct {
	Version int           `yaml:"version"`
	KeyID   string        `yaml:"key_id"`
	Secrets []VaultSecret `yaml:"secrets"`

	aead cipher.AEAD
}

// VaultSecret is one sealed secret.
type VaultSecret struct {
	Name    string    `yaml:"name"`
	Sealed  string    `yaml:"sealed"`
	Updated time.Time `yaml:"updated"`
}

// ParseMasterKey decodes a master key: 32 bytes as base64 (standard or
// URL alphabet) or 64 hex digits, surrounding space ignored.
func ParseMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString,
	} {
		if k, err := dec(s); err == nil && len(k) == MasterKeySize {
			return k, nil
		}
	}
	return nil, fmt.Errorf("master key: want %d bytes as base64 or hex", MasterKeySize)
}

// NewMasterKey returns a fresh random master key, base64.
func NewMasterKey() (string, error) {
	var k [MasterKeySize]byte
	if _, err := rand.Read(k[:]); err != nil {
		return "", fmt.Errorf("generating a master key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k[:]), nil
}

func masterKeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return cipher.NewGCM(block)
}

// NewVault returns an empty vault sealed under key.
func NewVault(key []byte) (*Vault, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &Vault{Version: 1, KeyID: masterKeyID(key), aead: aead}, nil
}

// LoadVault reads a vault file and checks that key is its master key. A
// missing file with create set gives an empty vault.
func LoadVault(path string, key []byte, create bool) (*Vault, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		return NewVault(key)
	}
	if err != nil {
		return nil, fmt.Errorf("secret vault: %w", err)
	}
	v := &Vault{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("secret vault %s: %w", path, err)
	}
	if v.Version != 1 {
		return nil, fmt.Errorf("secret vault %s: version %d, want 1", path, v.Version)
	}
	if v.KeyID != masterKeyID(key) {
		return nil, fmt.Errorf("secret vault %s: sealed under master key %s, not the one given (%s)", path, v.KeyID, masterKeyID(key))
	}
	if v.aead, err = newAEAD(key); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, s := range v.Secrets {
		if seen[s.Name] {
			return nil, fmt.Errorf("secret vault %s: secrets[%d]: %q appears twice", path, i, s.Name)
		}
		seen[s.Name] = true
		if _, err := v.Open(s.Name); err != nil {
			return nil, fmt.Errorf("secret vault %s: secrets[%d]: %w", path, i, err)
		}
	}
	return v, nil
}

// Set seals value under name, replacing any earlier value.
func (v *Vault) Set(name string, value []byte, now time.Time) error {
	if name == "" || strings.ContainsAny(name, " \t\r\n") {
		return fmt.Errorf("secret name %q: want a non-empty name without spaces", name)
	}
	if len(value) == 0 {
		return fmt.Errorf("secret %s: empty value", name)
	}
	nonce := make([]byte, v.aead.NonceSize(), v.aead.NonceSize()+len(value)+v.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("sealing %s: %w", name, err)
	}
	sealed := base64.StdEncoding.EncodeToString(v.aead.Seal(nonce, nonce, value, []byte(name)))
	s := VaultSecret{Name: name, Sealed: sealed, Updated: now.UTC().Truncate(time.Second)}
	if i := slices.IndexFunc(v.Secrets, func(s VaultSecret) bool { return s.Name == name }); i >= 0 {
		v.Secrets[i] = s
	} else {
		v.Secrets = append(v.Secrets, s)
		slices.SortFunc(v.Secrets, func(a, b VaultSecret) int { return strings.Compare(a.Name, b.Name) })
	}
	return nil
}

// Open returns the plaintext of name. The caller must not log or keep it
// longer than needed.
func (v *Vault) Open(name string) ([]byte, error) {
	i := slices.IndexFunc(v.Secrets, func(s VaultSecret) bool { return s.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("secret %q: not in the vault", name)
	}
	raw, err := base64.StdEncoding.DecodeString(v.Secrets[i].Sealed)
	if err != nil || len(raw) < v.aead.NonceSize()+v.aead.Overhead() {
		return nil, fmt.Errorf("secret %q: malformed sealed value", name)
	}
	n := v.aead.NonceSize()
	plain, err := v.aead.Open(nil, raw[:n], raw[n:], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("secret %q: does not open under the master key (tampered or moved)", name)
	}
	return plain, nil
}

// Rekey reseals every secret under newKey.
func (v *Vault) Rekey(newKey []byte) error {
	aead, err := newAEAD(newKey)
	if err != nil {
		return err
	}
	next := &Vault{Version: 1, KeyID: masterKeyID(newKey), aead: aead}
	for _, s := range v.Secrets {
		plain, err := v.Open(s.Name)
		if err != nil {
			return err
		}
		if err := next.Set(s.Name, plain, s.Updated); err != nil {
			return err
		}
		clear(plain)
	}
	*v = *next
	return nil
}

// Save writes the vault atomically (a temporary file renamed over path),
// readable by its owner only.
func (v *Vault) Save(path string) error {
	data, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding vault: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vault-*")
	if err != nil {
		return fmt.Errorf("writing vault: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing vault %s: %w", path, err)
	}
	return nil
}
