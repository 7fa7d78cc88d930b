package proxy

import (
	"fmt"
	"strings"

	"github.com/apiguard/apiguard/event"
)

// How the proxy reads a query string.
//
// The upstream receives the query exactly as the client sent it (rewrite);
// the proxy only reads it, for inspection and for the event. Servers do not
// agree on what a query means: Go since 1.17 refuses a ";" and a bad "%"
// escape, older Go, Rack and Python's parse_qs took ";" for a separator,
// PHP and browsers keep both as data. Refusing them refuses real clients
// (Apache directory listings link to "?C=M;O=A", crawlers follow them,
// "data:text/plain;base64,…" values carry one), so the proxy parses
// leniently, and inspection looks at every reading an upstream might make:
//
//   - pairs are split on "&" only, and a ";" is part of a name or value;
//   - a pair that holds a ";" is also inspected as the pairs a ";"-splitting
//     server would see;
//   - names and values are decoded leniently (unescapeQuery): "+" is a
//     space, "%XX" a byte, and a "%" that starts no escape stays as it is;
//   - a name or value with such a "%" is also inspected as the raw text.
//
// A route with strict_query refuses a ";" and a bad escape instead
// (strictQuery), as Go's own parser would; so does a signed request, whose
// canonical query (auth.CanonicalRequest) covers only what url.ParseQuery reads.

// queryIter walks the pairs of a raw query string, split on "&" only.
// Empty pairs ("a=1&&b=2") are skipped; a pair without "=" has an empty
// value. The zero value walks nothing.
type queryIter struct{ rest string }

// next returns the next pair, raw (not decoded), and false after the last.
func (it *queryIter) next() (pair, name, value string, ok bool) {
	for it.rest != "" {
		pair, it.rest, _ = strings.Cut(it.rest, "&")
		if pair == "" {
			continue
		}
		name, value, _ = strings.Cut(pair, "=")
		return pair, name, value, true
	}
	return "", "", "", false
}

// unescapeQuery decodes one name or value of a query leniently, as
// browsers (URLSearchParams) and PHP do: "+" is a space, "%XX" is the byte
// XX, and a "%" not followed by two hex digits is kept as it is, which bad
// reports. The result may be invalid UTF-8 ("%C0%AF"): inspection wants
// the bytes; what goes into an event goes through event.ValidUTF8. It
// returns s itself, without allocating, when s holds neither "%" nor "+".
func unescapeQuery(s string) (out string, bad bool) {
	i := strings.IndexAny(s, "%+")
	if i < 0 {
		return s, false
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		case c == '%':
			bad = true
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), bad
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// QueryError is a query string a strict_query route refuses: a ";" or a
// "%" that does not start a "%XX" escape, at byte Offset of the raw query.
type QueryError struct {
	Offset    int
	Semicolon bool // a ";"; otherwise a bad escape
}

// Error implements error, for analysts (the event's reason).
func (e *QueryError) Error() string {
	if e.Semicolon {
		return fmt.Sprintf("query: unescaped \";\" at byte %d", e.Offset)
	}
	return fmt.Sprintf("query: invalid %%-escape at byte %d", e.Offset)
}

// Detail is what the client is told: what is wrong, where, and how to
// send it instead. It quotes nothing the client sent.
func (e *QueryError) Detail() string {
	if e.Semicolon {
		return fmt.Sprintf("The query string has a \";\" at byte %d: separate parameters with \"&\" and send a \";\" in a value as %%3B.", e.Offset)
	}
	return fmt.Sprintf("The query string has a \"%%\" at byte %d that does not start a %%XX escape: send a \"%%\" in a value as %%25.", e.Offset)
}

// StrictQuery is the strict reading of a raw query that the inspection's
// strict_query applies: nil, or a *QueryError saying what and where. Checks
// outside this package (OpenAPI validation) use it to refuse a query that
// a lenient parser would read differently.
func StrictQuery(raw string) error { return strictQuery(raw) }

// strictQuery returns a *QueryError for the first byte of raw that a strict
// parser refuses, and nil when there is none: then Go's url.ParseQuery, and
// every server that splits on "&" and decodes "%XX", read raw the same way.
func strictQuery(raw string) error {
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case ';':
			return &QueryError{Offset: i, Semicolon: true}
		case '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return &QueryError{Offset: i}
			}
			i += 2
		}
	}
	return nil
}

// InspectQuery calls look on every name and value of raw in each reading
// described at the top of this file, until look returns false; it returns
// what the last call returned.
func InspectQuery(raw string, look func(where, name, v string) bool) bool {
	for it := (queryIter{rest: raw}); ; {
		pair, k, v, ok := it.next()
		if !ok {
			return true
		}
		if !inspectPair(k, v, look) {
			return false
		}
		if strings.IndexByte(pair, ';') < 0 {
			continue
		}
		// As a server that also splits on ";" reads it.
		for rest := pair; rest != ""; {
			var sub string
			sub, rest, _ = strings.Cut(rest, ";")
			if sub == "" {
				continue
			}
			sk, sv, _ := strings.Cut(sub, "=")
			if !inspectPair(sk, sv, look) {
				return false
			}
		}
	}
}

// inspectPair inspects one raw name and value, decoded, and also raw when
// decoding met a bad escape and changed something else.
func inspectPair(k, v string, look func(where, name, v string) bool) bool {
	name, bad := unescapeQuery(k)
	if !look("query name", "", name) || bad && name != k && !look("query name", "", k) {
		return false
	}
	val, bad := unescapeQuery(v)
	return look("query", name, val) && (!bad || val == v || look("query", name, v))
}

// QueryValue returns the decoded value of the first pair of raw whose
// decoded name is name, and false if there is none.
func QueryValue(raw, name string) (string, bool) {
	for it := (queryIter{rest: raw}); ; {
		_, k, v, ok := it.next()
		if !ok {
			return "", false
		}
		if k, _ = unescapeQuery(k); k == name {
			v, _ = unescapeQuery(v)
			return v, true
		}
	}
}

// maxQueryParams bounds the parameters recorded per event.
const maxQueryParams = 32

// queryParams returns what an event records of a query: the names, decoded
// leniently and made valid UTF-8, and the values too when values is set.
// Pairs without a name are left out.
func queryParams(raw string, values bool) []*event.QueryParam {
	return queryParamsInto(nil, nil, raw, values)
}

// queryParamsInto is queryParams filling the elements of store first and
// appending to out (its capacity reused), so that a request's few
// parameters need no allocation of their own.
func queryParamsInto(out []*event.QueryParam, store []event.QueryParam, raw string, values bool) []*event.QueryParam {
	for it := (queryIter{rest: raw}); len(out) < maxQueryParams; {
		_, k, v, ok := it.next()
		if !ok {
			break
		}
		if k == "" {
			continue
		}
		name, _ := unescapeQuery(k)
		var qp *event.QueryParam
		if len(store) > 0 {
			qp, store = &store[0], store[1:]
		} else {
			qp = &event.QueryParam{}
		}
		qp.Name = clip(name, 128)
		if values {
			val, _ := unescapeQuery(v)
			qp.Value = clip(val, 1024)
		}
		out = append(out, qp)
	}
	return out
}
