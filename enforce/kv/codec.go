// Package kv provides the KV side of enforcement: the codec of entries in the
// APIGUARD_ENFORCEMENT bucket, the Watcher that keeps an enforce.Matcher in
// step with the bucket, and the Writer that responders and operators use.
// It is the only package under enforce that talks to NATS.
package kv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apiguard/apiguard/enforce"
)

// Key returns the bucket key of an entry: "<kind>.<value>" with every byte
// that NATS KV keys do not allow written as "=XX" (hex), so IPv6 addresses,
// e-mail subjects and arbitrary key ids are all representable.
func Key(kind enforce.Kind, value string) string {
	var b strings.Builder
	b.Grow(len(kind.String()) + 1 + len(value))
	b.WriteString(kind.String())
	b.WriteByte('.')
	for i := 0; i < len(value); i++ {
		c := value[i]
		// A key may not end in a dot nor hold an empty token, so dots at
		// either end of the value are escaped too.
		if keyByteOK(c) && !(c == '.' && (i == 0 || i == len(value)-1)) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "=%02X", c)
	}
	return b.String()
}

func keyByteOK(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '/' || c == '.'
}

// ParseKey returns the kind and value of a bucket key made by Key.
func ParseKey(key string) (enforce.Kind, string, error) {
	kindName, esc, ok := strings.Cut(key, ".")
	if !ok || esc == "" {
		return enforce.KindInvalid, "", fmt.Errorf("key %q: want <kind>.<value>", key)
	}
	kind, err := enforce.ParseKind(kindName)
	if err != nil {
		return enforce.KindInvalid, "", fmt.Errorf("key %q: %w", key, err)
	}
	if strings.IndexByte(esc, '=') < 0 {
		return kind, esc, nil
	}
	var b strings.Builder
	for i := 0; i < len(esc); i++ {
		c := esc[i]
		if c != '=' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(esc) {
			return enforce.KindInvalid, "", fmt.Errorf("key %q: truncated escape at byte %d", key, len(kindName)+1+i)
		}
		hi, lo := unhex(esc[i+1]), unhex(esc[i+2])
		if hi < 0 || lo < 0 {
			return enforce.KindInvalid, "", fmt.Errorf("key %q: bad escape at byte %d", key, len(kindName)+1+i)
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	return kind, b.String(), nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// wireEntry is the JSON value stored under a key; JSON so that operators can
// read it with any NATS client.
type wireEntry struct {
	Action    string    `json:"action"`
	Reason    string    `json:"reason,omitempty"`
	AnomalyID string    `json:"anomaly_id,omitempty"`
	Actor     string    `json:"actor,omitempty"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires,omitzero"`
	Trigger   time.Time `json:"trigger,omitzero"`
	// Rate is a throttle's requests per second; absent (0) in values
	// written before rates existed and on other actions.
	Rate float64 `json:"rate,omitempty"`
}

// EncodeEntry returns the bucket key and value of e.
func EncodeEntry(e enforce.Entry) (key string, value []byte, err error) {
	if err := e.Normalize(); err != nil {
		return "", nil, fmt.Errorf("encoding entry: %w", err)
	}
	value, err = json.Marshal(wireEntry{
		Action: e.Action.String(), Reason: e.Reason, AnomalyID: e.AnomalyID, Actor: e.Actor,
		Created: e.Created.UTC(), Expires: e.Expires.UTC(), Trigger: e.Trigger.UTC(), Rate: e.Rate,
	})
	if err != nil {
		return "", nil, fmt.Errorf("encoding entry: %w", err)
	}
	return Key(e.Kind, e.Value), value, nil
}

// ErrMalformed marks an entry in the bucket that cannot be decoded.
var ErrMalformed = errors.New("malformed enforcement entry")

// DecodeEntry parses the value stored under key. Unknown JSON fields are
// refused, so a typo in a hand-written entry is seen, not ignored.
func DecodeEntry(key string, value []byte) (enforce.Entry, error) {
	kind, v, err := ParseKey(key)
	if err != nil {
		return enforce.Entry{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var fw fastEntry
	if decodeFast(value, &fw) {
		action, err := enforce.ParseAction(string(fw.action))
		if err != nil {
			return enforce.Entry{}, malformed(key, err)
		}
		e := enforce.Entry{Kind: kind, Value: v, Action: action, Reason: string(fw.reason), AnomalyID: string(fw.anomalyID),
			Actor: string(fw.actor), Created: fw.created, Expires: fw.expires, Trigger: fw.trigger}
		if err := e.Normalize(); err != nil {
			return enforce.Entry{}, malformed(key, err)
		}
		return e, nil
	}
	var w wireEntry
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return enforce.Entry{}, fmt.Errorf("%w: key %q: %w", ErrMalformed, key, err)
	}
	action, err := enforce.ParseAction(w.Action)
	if err != nil {
		return enforce.Entry{}, fmt.Errorf("%w: key %q: %w", ErrMalformed, key, err)
	}
	e := enforce.Entry{Kind: kind, Value: v, Action: action, Reason: w.Reason, AnomalyID: w.AnomalyID,
		Actor: w.Actor, Created: w.Created, Expires: w.Expires, Trigger: w.Trigger, Rate: w.Rate}
	if err := e.Normalize(); err != nil {
		return enforce.Entry{}, fmt.Errorf("%w: key %q: %w", ErrMalformed, key, err)
	}
	return e, nil
}

func malformed(key string, err error) error {
	return fmt.Errorf("%w: key %q: %w", ErrMalformed, key, err)
}
