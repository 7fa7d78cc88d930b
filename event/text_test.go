package event

import (
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func TestValidUTF8(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"/orders/42", "/orders/42"},
		{"/scripts/..\xc0\xaf../winnt/system32/cmd.exe", "/scripts/..%C0%AF../winnt/system32/cmd.exe"},
		{"caf\xe9", "caf%E9"},            // Latin-1
		{"café", "café"},                 // valid two-byte sequence
		{"\xe2\x82", "%E2%82"},           // truncated sequence
		{"a\xff\xfeb", "a%FF%FEb"},       // never valid bytes
		{"\xed\xa0\x80", "%ED%A0%80"},    // a UTF-16 surrogate
		{"\uFFFD stays", "\uFFFD stays"}, // the replacement character itself is valid
		{"100% \x80", "100% %80"},        // a literal % is left alone
		{"日本\x80語", "日本%80語"},
	} {
		got := ValidUTF8(tc.in)
		if got != tc.want {
			t.Errorf("ValidUTF8(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("ValidUTF8(%q) = %q is not valid UTF-8", tc.in, got)
		}
	}
	valid := "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"
	if n := testing.AllocsPerRun(100, func() { _ = ValidUTF8(valid) }); n != 0 {
		t.Errorf("ValidUTF8 of valid text allocates %v times", n)
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 3, "abc"},
		{"abcdef", 0, ""},
		{"ab日本", 4, "ab"}, // 日 is 3 bytes: cutting after its first byte drops it
		{"ab日本", 5, "ab日"},
		{"ab日本", 6, "ab日"},
		{"ab日本", 7, "ab日"},
		{"ab日本", 8, "ab日本"},
		{"x\U0001F600y", 4, "x"},
		{"\x80\x80\x80\x80\x80\x80", 5, "\x80\x80\x80\x80\x80"}, // invalid in, bounded back-off
	} {
		if got := Clip(tc.in, tc.n); got != tc.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	for n := range 20 {
		if got := Clip("é日\U0001F600aé", n); !utf8.ValidString(got) || len(got) > n {
			t.Errorf("Clip(…, %d) = %q", n, got)
		}
	}
}

// TestSanitizeEvent sets every string field of a request event, found by
// reflection, to invalid UTF-8: after SanitizeEvent the event encodes with
// the strict encoders. A string field added to the event later and left
// out of SanitizeEvent fails here.
func TestSanitizeEvent(t *testing.T) {
	ev := &RequestEvent{Query: []*QueryParam{{}, {}}, ForwardedFor: []string{"", ""}}
	const bad = "x\xc0\xafy"
	var set func(m protoreflect.Message)
	set = func(m protoreflect.Message) {
		fields := m.Descriptor().Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			switch {
			case fd.Kind() == protoreflect.StringKind && fd.IsList():
				l := m.Mutable(fd).List()
				for j := range l.Len() {
					l.Set(j, protoreflect.ValueOfString(bad))
				}
				if l.Len() == 0 {
					l.Append(protoreflect.ValueOfString(bad))
				}
			case fd.Kind() == protoreflect.StringKind:
				m.Set(fd, protoreflect.ValueOfString(bad))
			case fd.Kind() == protoreflect.MessageKind && fd.IsList():
				l := m.Mutable(fd).List()
				if l.Len() == 0 {
					l.Append(protoreflect.ValueOfMessage(l.NewElement().Message()))
				}
				for j := range l.Len() {
					set(l.Get(j).Message())
				}
			case fd.Kind() == protoreflect.MessageKind:
				set(m.Mutable(fd).Message())
			}
		}
	}
	set(ev.ProtoReflect())
	if _, err := proto.Marshal(ev); err == nil {
		t.Fatal("the test event encodes before sanitizing: it sets no invalid string")
	}
	if !SanitizeEvent(ev) {
		t.Error("SanitizeEvent reported no change")
	}
	if _, err := proto.Marshal(ev); err != nil {
		t.Errorf("after SanitizeEvent: %v", err)
	}
	if _, err := protojson.Marshal(ev); err != nil {
		t.Errorf("after SanitizeEvent, protojson: %v", err)
	}
	if ev.Path != "x%C0%AFy" {
		t.Errorf("path %q, want the bytes escaped", ev.Path)
	}
	if SanitizeEvent(ev) {
		t.Error("a second SanitizeEvent changed something")
	}

	typ := typical()
	if n := testing.AllocsPerRun(100, func() { SanitizeEvent(typ) }); n != 0 {
		t.Errorf("SanitizeEvent of a valid event allocates %v times", n)
	}
}
