package event

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// ClientFingerprint identifies the client software behind a request: the
// TLS ClientHello (JA4), the header order, the user agent's family and the
// Accept-Language header. Two requests with the same fingerprint came,
// very likely, from the same program on the same kind of machine; a token
// used under two fingerprints at once is being shared or was stolen. It is
// "fp:" and 16 hex digits, and it is what the proxy matches an
// enforcement entry of kind fp against.
func ClientFingerprint(tlsFP, headerOrder, userAgent, acceptLanguage string) string {
	parts := [...]string{tlsFP, headerOrder, UAFamily(userAgent), acceptLanguage}
	// The usual request's fields fit on the stack: hashed in one call, so
	// that only the result is allocated.
	var textArr [1024]byte
	text := textArr[:0]
	for _, s := range parts {
		text = append(append(text, s...), 0)
	}
	sum := sha256.Sum256(text)
	var out [3 + 16]byte
	copy(out[:], "fp:")
	hex.Encode(out[3:], sum[:8])
	return string(out[:])
}

// ClientFingerprintOf is ClientFingerprint of an event's fields.
func ClientFingerprintOf(ev *RequestEvent) string {
	return ClientFingerprint(ev.GetTlsFingerprint(), ev.GetHeaderFingerprint(), ev.GetUserAgent(), ev.GetAcceptLanguage())
}

// uaFamilies are checked in order: the first token found names the family.
// Order matters where user agents carry several (Edge and Chrome both say
// "Chrome/", Chrome also says "Safari/").
var uaFamilies = [...]struct{ token, family string }{
	{"edg/", "edge"}, {"opr/", "opera"}, {"headlesschrome", "headless-chrome"},
	{"chrome/", "chrome"}, {"crios/", "chrome"}, {"firefox/", "firefox"}, {"fxios/", "firefox"},
	{"safari/", "safari"}, {"okhttp", "okhttp"}, {"cfnetwork", "ios-app"}, {"dalvik", "android-app"},
	{"curl/", "curl"}, {"wget", "wget"}, {"python", "python"}, {"go-http-client", "go"},
	{"java/", "java"}, {"apache-httpclient", "java"}, {"node", "node"}, {"axios", "node"},
	{"postman", "postman"}, {"sqlmap", "sqlmap"}, {"nikto", "nikto"}, {"nuclei", "nuclei"},
	{"bot", "bot"}, {"spider", "bot"}, {"crawl", "bot"},
}

// UAFamily returns the user agent's family without its version
// ("chrome", "firefox", "okhttp", "curl", …), "other" for one it does not
// know and "none" for an empty one. A browser update leaves it unchanged.
func UAFamily(ua string) string {
	if ua == "" {
		return "none"
	}
	contains := containsASCIIFold
	for i := 0; i < len(ua); i++ {
		if ua[i] >= utf8.RuneSelf {
			// Unicode case rules (the Kelvin sign lowers to "k"): the
			// slow way, for the rare user agent that needs it.
			lower := strings.ToLower(ua)
			contains = func(_, token string) bool { return strings.Contains(lower, token) }
			break
		}
	}
	for _, f := range uaFamilies {
		if contains(ua, f.token) {
			return f.family
		}
	}
	return "other"
}

// containsASCIIFold reports whether s contains the lower-case ASCII token,
// ignoring ASCII case in s, without allocating.
func containsASCIIFold(s, token string) bool {
	for i := 0; i+len(token) <= len(s); i++ {
		j := 0
		for ; j < len(token); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != token[j] {
				break
			}
		}
		if j == len(token) {
			return true
		}
	}
	return false
}
