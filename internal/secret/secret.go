// Package secret provides string types for configuration values that must
// never be printed: String for passwords and other opaque credentials, and
// URL for addresses that may carry credentials in their user information or
// query.
//
// Both decode from YAML, JSON and environment variables like a plain string,
// so the config is written as before. Every way of printing them gives a
// redacted form instead of the value: fmt with any verb (%v, %s, %q, %#v,
// %d …), String, GoString, encoding/json, gopkg.in/yaml.v3,
// encoding.TextMarshaler and log/slog. The value is read with Reveal, at
// the one place that hands it to the system it authenticates to, so that
// searching for Reveal lists every use. An empty value prints empty: that a
// secret is unset is not a secret, and it helps an operator reading
// 'apiguard check-config'.
//
// What the types cannot catch is a revealed value that is printed again
// (a request URL inside an error from net/http, say): the code around a
// Reveal keeps what it builds out of logs and errors.
//
// The package imports nothing of the project, so every package that holds
// configuration may use it, event/ aside (event/ imports nothing).
package secret

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
)

// Redacted is what a secret prints as.
const Redacted = "<redacted>"

// String is a secret string: a password, a token, a key, a URL whose path is
// the credential (an incoming-webhook URL). It prints as Redacted (or
// empty when empty). The zero value is the empty secret.
type String string

// Reveal returns the secret itself. Call it only where the value is handed
// to what it authenticates to, never to build a message.
func (s String) Reveal() string { return string(s) }

// String returns Redacted, or "" for the empty secret.
func (s String) String() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// GoString implements fmt.GoStringer (%#v) with the redacted form.
func (s String) GoString() string { return "secret.String(" + quote(s.String()) + ")" }

// Format implements fmt.Formatter: every verb and flag prints the redacted
// form, so no format string can reach the value.
func (s String) Format(f fmt.State, verb rune) { format(f, verb, s.String(), s.GoString()) }

// MarshalText implements encoding.TextMarshaler with the redacted form.
func (s String) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON implements json.Marshaler with the redacted form.
func (s String) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalYAML implements yaml.Marshaler (gopkg.in/yaml.v3) with the
// redacted form.
func (s String) MarshalYAML() (any, error) { return s.String(), nil }

// LogValue implements slog.LogValuer with the redacted form.
func (s String) LogValue() slog.Value { return slog.StringValue(s.String()) }

// URL is a URL, or a comma-separated list of URLs (as NATS takes), that may
// carry credentials. It prints with its scheme, host and path, and with
// the user information, every query value and the fragment replaced by
// Redacted:
//
//	nats://apiguard:pw@nats-1:4222        → nats://<redacted>@nats-1:4222
//	https://am.example/api?token=abc      → https://am.example/api?token=<redacted>
//
// A value that does not parse as an absolute URL with a host prints as
// Redacted whole. Use String instead of URL where the path itself is the
// credential. The zero value is the empty URL.
type URL string

// Reveal returns the URL itself, credentials included. Call it only where
// the URL is dialled or requested, never to build a message.
func (u URL) Reveal() string { return string(u) }

// String returns the URL with its credentials redacted (see URL).
func (u URL) String() string {
	if u == "" {
		return ""
	}
	parts := strings.Split(string(u), ",")
	for i, p := range parts {
		parts[i] = redactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// GoString implements fmt.GoStringer (%#v) with the redacted form.
func (u URL) GoString() string { return "secret.URL(" + quote(u.String()) + ")" }

// Format implements fmt.Formatter: every verb and flag prints the redacted
// form.
func (u URL) Format(f fmt.State, verb rune) { format(f, verb, u.String(), u.GoString()) }

// MarshalText implements encoding.TextMarshaler with the redacted form.
func (u URL) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// MarshalJSON implements json.Marshaler with the redacted form.
func (u URL) MarshalJSON() ([]byte, error) { return json.Marshal(u.String()) }

// MarshalYAML implements yaml.Marshaler (gopkg.in/yaml.v3) with the
// redacted form.
func (u URL) MarshalYAML() (any, error) { return u.String(), nil }

// LogValue implements slog.LogValuer with the redacted form.
func (u URL) LogValue() slog.Value { return slog.StringValue(u.String()) }

// HasCredentials reports whether a URL carries user information (user,
// password or a token in the user field). Validators use it to refuse
// credentials in URLs whose credentials belong elsewhere.
func HasCredentials(raw string) bool {
	p, err := url.Parse(raw)
	if err != nil {
		return strings.Contains(raw, "@") // unparsable: assume the worst
	}
	return p.User != nil
}

// redactURL returns one URL with its user information, query values and
// fragment redacted, or Redacted if it is not an absolute URL with a host.
func redactURL(raw string) string {
	p, err := url.Parse(raw)
	if err != nil || p.Scheme == "" || p.Host == "" || p.Opaque != "" {
		return Redacted
	}
	var b strings.Builder
	b.WriteString(p.Scheme)
	b.WriteString("://")
	if p.User != nil {
		b.WriteString(Redacted)
		b.WriteByte('@')
	}
	b.WriteString(p.Host)
	b.WriteString(p.EscapedPath())
	if p.RawQuery != "" || p.ForceQuery {
		b.WriteByte('?')
		for i, kv := range strings.Split(p.RawQuery, "&") {
			if i > 0 {
				b.WriteByte('&')
			}
			if k, _, ok := strings.Cut(kv, "="); ok {
				b.WriteString(k)
				b.WriteByte('=')
			}
			if kv != "" {
				b.WriteString(Redacted)
			}
		}
	}
	if p.Fragment != "" {
		b.WriteString("#" + Redacted)
	}
	return b.String()
}

// format prints shown for every verb of fmt, keeping width and flags, and
// goString for %#v.
func format(f fmt.State, verb rune, shown, goString string) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, goString)
		return
	}
	switch verb {
	case 'v', 's', 'q', 'x', 'X':
	default:
		verb = 's' // %d and the like would print the value's type and bytes
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), shown)
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
