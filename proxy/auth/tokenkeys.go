package auth

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TokenKeys are the proxy token signing keys: one Ed25519 key per epoch
// of Rotate, derived with HKDF-SHA256 from a seed held in the vault. Every
// proxy with the same seed derives the same keys, so tokens issued by one
// are accepted by all without coordination, and rotation needs no state.
// The public set holds the previous, current and next epoch's keys (tokens
// outlive the epoch they were issued in by at most their TTL, and proxies'
// clocks differ a little). Safe for concurrent use.
type TokenKeys struct {
	seed   []byte
	rotate time.Duration

	mu    sync.Mutex
	cache map[int64]ed25519.PrivateKey
	set   *jose.JSONWebKeySet
	setAt int64 // epoch set was built for
}

// NewTokenKeys returns keys derived from seed (at least 32 bytes), rotating
// every rotate.
func NewTokenKeys(seed []byte, rotate time.Duration) (*TokenKeys, error) {
	if len(seed) < 32 {
		return nil, fmt.Errorf("token signing seed: %d bytes, want at least 32", len(seed))
	}
	if rotate < time.Minute {
		return nil, fmt.Errorf("token key rotation: %s, want at least 1m", rotate)
	}
	return &TokenKeys{seed: seed, rotate: rotate, cache: map[int64]ed25519.PrivateKey{}, setAt: -1}, nil
}

func (k *TokenKeys) epoch(now time.Time) int64 { return now.Unix() / int64(k.rotate/time.Second) }

func kidOf(epoch int64) string { return "apiguard-" + strconv.FormatInt(epoch, 10) }

// key derives (and caches) the key of an epoch; k.mu must be held.
func (k *TokenKeys) key(epoch int64) ed25519.PrivateKey {
	if p, ok := k.cache[epoch]; ok {
		return p
	}
	seed, err := hkdf.Key(sha256.New, k.seed, []byte(strconv.FormatInt(epoch, 10)), "apiguard proxy token signing key", ed25519.SeedSize)
	if err != nil {
		panic(err) // only for lengths over 255*32 bytes
	}
	p := ed25519.NewKeyFromSeed(seed)
	for e := range k.cache {
		if e < epoch-2 || e > epoch+2 {
			delete(k.cache, e)
		}
	}
	k.cache[epoch] = p
	return p
}

// Current returns the signing key and its kid at now.
func (k *TokenKeys) Current(now time.Time) (string, ed25519.PrivateKey) {
	e := k.epoch(now)
	k.mu.Lock()
	defer k.mu.Unlock()
	return kidOf(e), k.key(e)
}

// PublicSet returns the verification keys at now, as a JWKS.
func (k *TokenKeys) PublicSet(now time.Time) *jose.JSONWebKeySet {
	e := k.epoch(now)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.setAt == e {
		return k.set
	}
	set := &jose.JSONWebKeySet{}
	for _, ep := range []int64{e - 1, e, e + 1} {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.key(ep).Public(), KeyID: kidOf(ep),
			Algorithm: string(jose.EdDSA), Use: "sig"})
	}
	k.set, k.setAt = set, e
	return set
}
