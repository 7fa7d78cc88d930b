package proxy

import (
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/apiguard/apiguard/event"
)

// TestEventTextIsValidUTF8 sends bytes that are not UTF-8 in the path,
// the query, the headers and the user agent: the event keeps the path as
// sent, writes every other invalid byte as %XX, never cuts a character in
// two when it clips, and encodes with the strict encoders (protojson
// refuses invalid UTF-8, and with it `replay backtest --anomalies`).
func TestEventTextIsValidUTF8(t *testing.T) {
	ic := DefaultInspectConfig()
	ic.Injection = InjectionFlag
	s := serveProxy(t, func(c *Config) { c.CaptureQueryValues = true }, inspectionForTests(ic))

	const worm = "/scripts/..%c0%af../winnt/system32/cmd.exe"
	resp := getRaw(t, s.addr, worm+"?q=%c0%af&%ff%fe=1&%ff%3Cb%3E=%3Cscript%3Ealert(1)%3C/script%3E",
		"User-Agent: Mozilla/5.0 caf\xe9", "Referer: http://x.example/\xff", "Origin: http://\xfe.example",
		"Accept-Language: fr-\xe9", "X-API-Key: k\xff.secret")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ev := s.events.Last(t)
	assertValidEvent(t, ev)
	for _, c := range []struct{ field, got, want string }{
		{"path", ev.Path, worm},
		{"api", ev.Api, "GET /scripts/..%C0%AF../winnt/system32/cmd.exe"},
		{"user agent", ev.UserAgent, "Mozilla/5.0 caf%E9"},
		{"referer", ev.Referer, "http://x.example/%FF"},
		{"origin", ev.Origin, "http://%FE.example"},
		{"accept language", ev.AcceptLanguage, "fr-%E9"},
		{"api key id", ev.ApiKeyId, "k%FF"},
		{"query[0]", ev.Query[0].Name + "=" + ev.Query[0].Value, "q=%C0%AF"},
		{"query[1]", ev.Query[1].Name + "=" + ev.Query[1].Value, "%FF%FE=1"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if !strings.HasPrefix(ev.Reason, "flagged: xss in query %FF<b>") {
		t.Errorf("reason %q, want the flagged XSS under its parameter's name", ev.Reason)
	}

	// A long user agent of valid two-byte characters, clipped at 512
	// bytes: the cut falls inside a character.
	long := "Mozilla/5.0" + strings.Repeat("é", 300)
	getRaw(t, s.addr, "/long", "User-Agent: "+long, "Referer: http://x.example/"+strings.Repeat("日", 200))
	ev = s.events.Last(t)
	assertValidEvent(t, ev)
	if len(ev.UserAgent) < 510 || !strings.HasPrefix(long, ev.UserAgent) {
		t.Errorf("user agent clipped to %d bytes, want a prefix of 510 or more", len(ev.UserAgent))
	}
}

// assertValidEvent fails the test unless ev encodes with protobuf-go and
// protojson, which refuse a string field that is not valid UTF-8.
func assertValidEvent(t *testing.T, ev *event.RequestEvent) {
	t.Helper()
	if _, err := proto.Marshal(ev); err != nil {
		t.Errorf("proto.Marshal(event): %v", err)
	}
	if _, err := protojson.Marshal(ev); err != nil {
		t.Errorf("protojson.Marshal(event): %v", err)
	}
}

func TestCredentialsValidUTF8(t *testing.T) {
	for k, want := range map[string]string{"k\xff.secret": "k%FF", "caf\xe9": "h:"} {
		if id := keyID(k); !utf8.ValidString(id) || !strings.HasPrefix(id, want) {
			t.Errorf("keyID(%q) = %q, want %q…", k, id, want)
		}
	}
}
