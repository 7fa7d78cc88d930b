package event

import (
	"unicode/utf8"
)

// Every string field of a message must be valid UTF-8: Protocol Buffers
// define string fields so, and protojson, the Go protobuf runtime and the
// Grafana plugin refuse a message that breaks the rule. The proxy reads
// bytes from the network (a path decoded from %C0%AF, a header of Latin-1
// bytes), so whatever it copies into an event goes through ValidUTF8, and
// what it shortens goes through Clip.

const hexDigits = "0123456789ABCDEF"

// ValidUTF8 returns s when it is valid UTF-8. Otherwise it returns a copy
// in which every byte that is not part of a valid UTF-8 sequence is written
// as "%XX" (upper-case hex), the way a URL escapes it: the result is valid
// UTF-8 and keeps every byte's value, so an analyst still sees the
// "%C0%AF" of an overlong-encoding attack. Valid sequences, U+FFFD
// included, are kept as they are. It allocates only for invalid input.
func ValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s)+16)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&0xF])
			i++
			continue
		}
		b = append(b, s[i:i+n]...)
		i += n
	}
	return string(b)
}

// Clip returns s shortened to at most n bytes without cutting a UTF-8
// sequence in two: a valid s gives a valid result. It does not allocate.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	// Back off to the start of the sequence s[n] continues, if any: at
	// most UTFMax-1 bytes, so that invalid input (a run of continuation
	// bytes) cannot shorten the result further.
	for i := n; i >= 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return s[:n]
}

// SanitizeEvent replaces every string field of ev that is not valid UTF-8
// by ValidUTF8 of it, and reports whether it changed any. Producers that
// build events from the network make each field valid where they read it;
// SanitizeEvent is for events from elsewhere (capture files and streams
// written by older versions) and for the proxy's last look before it
// emits. It does not allocate when every field is valid.
func SanitizeEvent(ev *RequestEvent) bool {
	changed := false
	fix := func(p *string) {
		if !utf8.ValidString(*p) {
			*p = ValidUTF8(*p)
			changed = true
		}
	}
	for _, p := range [...]*string{
		&ev.Id, &ev.Proxy, &ev.Api, &ev.Method, &ev.Host, &ev.Path, &ev.UserAgent, &ev.TlsFingerprint,
		&ev.HeaderFingerprint, &ev.ApiKeyId, &ev.TokenId, &ev.TokenHash, &ev.Subject, &ev.Session, &ev.Origin,
		&ev.Referer, &ev.Check, &ev.Reason, &ev.TlsJa3, &ev.AcceptLanguage, &ev.Account,
	} {
		fix(p)
	}
	for i := range ev.ForwardedFor {
		fix(&ev.ForwardedFor[i])
	}
	for _, q := range ev.Query {
		if q != nil {
			fix(&q.Name)
			fix(&q.Value)
		}
	}
	return changed
}
