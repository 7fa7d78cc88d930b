package event

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// ClientFingerprint identifies the client software behind a request: the
// TLS ClientHello (JA4), the header order, the user agent's family and the
// Accept-Language header. Two requests with the same fingerprint came,
// very likely, from the same program on the same kind of machine; a token
// used under two fingerprints at once is being shared or was stolen. It is
// "fp:" and 16 hex digits, and it is what the proxy matches an
// enforcement entry of kind fp against.
func ClientFingerprint(tlsFP, headerOrder, userAgent, acceptLanguage string) string {
	h := sha256.New()
	for _, s := range [...]string{tlsFP, headerOrder, UAFamily(userAgent), acceptLanguage} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return "fp:" + hex.EncodeToString(h.Sum(sum[:0])[:8])
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
	lower := strings.ToLower(ua)
	for _, f := range uaFamilies {
		if strings.Contains(lower, f.token) {
			return f.family
		}
	}
	return "other"
}
