package kv

import (
	"time"
	"unicode/utf8"

	"github.com/apiguard/apiguard/enforce"
)

// fastEntry is a value decoded by decodeFast: strings still as bytes of
// the value, so that fields the caller drops cost nothing.
type fastEntry struct {
	action, reason, anomalyID, actor []byte
	created, expires, trigger        time.Time
}

// decodeFast decodes the values EncodeEntry writes (a flat JSON object of
// known keys, strings without escapes, times in RFC 3339) without
// reflection or allocation. It returns false for anything else (an escape,
// an unknown key, a rate, null, a syntax error, trailing data), which the
// strict decoder then handles with its errors; what it accepts, the strict
// decoder decodes the same (FuzzDecodeFast).
func decodeFast(b []byte, w *fastEntry) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		key, j, ok := plainString(b, i)
		if !ok {
			return false
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		val, j, ok := plainString(b, skipSpace(b, i+1))
		if !ok {
			return false
		}
		switch string(key) {
		case "action":
			w.action = val
		case "reason":
			w.reason = val
		case "anomaly_id":
			w.anomalyID = val
		case "actor":
			w.actor = val
		case "created":
			ok = w.created.UnmarshalText(val) == nil
		case "expires":
			ok = w.expires.UnmarshalText(val) == nil
		case "trigger":
			ok = w.trigger.UnmarshalText(val) == nil
		default:
			return false
		}
		if !ok {
			return false
		}
		i = skipSpace(b, j)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

// plainString returns the content of the JSON string at b[i:] and the
// index after it, if it has no escape, no control character and is valid
// UTF-8 (what the strict decoder would return unchanged).
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s := b[i+1 : j]
			return s, j + 1, utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// decodeCompact decodes the value under key as DecodeEntry does, but
// leaves the analyst's fields out of every entry but allow entries, as
// enforce.Matcher drops them (the full load reads every entry this way).
func decodeCompact(key string, value []byte) (enforce.Entry, error) {
	var w fastEntry
	if !decodeFast(value, &w) {
		return DecodeEntry(key, value)
	}
	kind, v, err := ParseKey(key)
	if err != nil {
		return enforce.Entry{}, malformed(key, err)
	}
	action, err := enforce.ParseAction(string(w.action))
	if err != nil {
		return enforce.Entry{}, malformed(key, err)
	}
	e := enforce.Entry{Kind: kind, Value: v, Action: action, Created: w.created, Expires: w.expires, Trigger: w.trigger}
	if action == enforce.ActionAllow {
		e.Reason, e.AnomalyID, e.Actor = string(w.reason), string(w.anomalyID), string(w.actor)
	}
	if err := e.Normalize(); err != nil {
		return enforce.Entry{}, malformed(key, err)
	}
	return e, nil
}
