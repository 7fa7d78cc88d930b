package kv

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
)

func TestKeyRoundTrip(t *testing.T) {
	tests := []struct {
		kind  enforce.Kind
		value string
		key   string
	}{
		{enforce.KindIP, "203.0.113.7", "ip.203.0.113.7"},
		{enforce.KindIP, "2001:db8::1", "ip.2001=3Adb8=3A=3A1"},
		{enforce.KindCIDR, "10.0.0.0/8", "cidr.10.0.0.0/8"},
		{enforce.KindSub, "alice@example.com", "sub.alice=40example.com"},
		{enforce.KindKey, "a=b*c>d e", "key.a=3Db=2Ac=3Ed=20e"},
		{enforce.KindKey, ".dot.", "key.=2Edot=2E"},
		{enforce.KindFP, "t13d1516h2_8daaf6152771", "fp.t13d1516h2_8daaf6152771"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			key := Key(tt.kind, tt.value)
			if key != tt.key {
				t.Errorf("Key = %q, want %q", key, tt.key)
			}
			kind, v, err := ParseKey(key)
			if err != nil || kind != tt.kind || v != tt.value {
				t.Errorf("ParseKey(%q) = %v %q %v", key, kind, v, err)
			}
		})
	}
}

func TestParseKeyRejects(t *testing.T) {
	for _, k := range []string{"", "ip", "ip.", "email.x", "key.a=4", "key.a=ZZ", "key.=4"} {
		if _, _, err := ParseKey(k); err == nil {
			t.Errorf("ParseKey(%q) accepted", k)
		}
	}
}

func TestEntryRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	in := enforce.Entry{Kind: enforce.KindKey, Value: "k1", Action: enforce.ActionBlock, Reason: "rate", AnomalyID: "A1",
		Actor: "policy", Created: now, Expires: now.Add(time.Minute), Trigger: now.Add(-time.Second)}
	key, val, err := EncodeEntry(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeEntry(key, val)
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("round trip: got %+v, want %+v", out, in)
	}
}

func TestDecodeEntryRejects(t *testing.T) {
	tests := []struct {
		name, key, value, want string
	}{
		{"not json", "key.k", "{", "key \"key.k\""},
		{"unknown field", "key.k", `{"action":"block","created":"2026-01-01T00:00:00Z","colour":"red"}`, "colour"},
		{"bad action", "key.k", `{"action":"nuke","created":"2026-01-01T00:00:00Z"}`, "nuke"},
		{"bad ip", "ip.999.1.1.1", `{"action":"block","created":"2026-01-01T00:00:00Z"}`, "ip entry"},
		{"bad kind", "mail.x", `{"action":"block"}`, "unknown kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeEntry(tt.key, []byte(tt.value))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrMalformed mentioning %q", err, tt.want)
			}
		})
	}
}

// FuzzParseKey: keys in the bucket may be written by anyone with access.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"ip.10.0.0.1", "key.a=3Db", "sub.=", "cidr.10.0.0.0/8", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		kind, v, err := ParseKey(key)
		if err != nil {
			return
		}
		if again := Key(kind, v); again != key {
			// Escapes are canonical upper-case hex; other spellings must still parse back the same value.
			k2, v2, err := ParseKey(again)
			if err != nil || k2 != kind || v2 != v {
				t.Fatalf("Key(ParseKey(%q)) = %q does not parse back", key, again)
			}
		}
	})
}

func TestAllowEntryRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	in := enforce.Entry{Kind: enforce.KindCIDR, Value: "203.0.113.0/24", Action: enforce.ActionAllow, Reason: "office NAT",
		Actor: "operator:ann", Created: now}
	key, val, err := EncodeEntry(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(val), `"action":"allow"`) {
		t.Errorf("value %s does not name the allow action", val)
	}
	out, err := DecodeEntry(key, val)
	if err != nil || out != in {
		t.Fatalf("round trip: %+v, %v; want %+v", out, err, in)
	}
}

// TestThrottleRate: a throttle's rate survives the bucket, values written
// before rates existed decode with rate 0, and a rate where it means
// nothing is malformed.
func TestThrottleRate(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	in := enforce.Entry{Kind: enforce.KindKey, Value: "partner-7", Action: enforce.ActionThrottle, Reason: "volumetric",
		Actor: "policy:volumetric-throttle", Created: now, Expires: now.Add(10 * time.Minute), Rate: 2.5}
	key, val, err := EncodeEntry(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(val), `"rate":2.5`) {
		t.Errorf("value %s does not carry the rate", val)
	}
	out, err := DecodeEntry(key, val)
	if err != nil || out != in {
		t.Fatalf("round trip: %+v, %v; want %+v", out, err, in)
	}

	old, err := DecodeEntry("key.partner-7", []byte(`{"action":"throttle","created":"2026-01-01T00:00:00Z"}`))
	if err != nil || old.Rate != 0 || old.Action != enforce.ActionThrottle {
		t.Errorf("old throttle value: %+v, %v; want rate 0", old, err)
	}
	_, blockVal, err := EncodeEntry(enforce.Entry{Kind: enforce.KindIP, Value: "10.0.0.1", Action: enforce.ActionBlock, Created: now})
	if err != nil || strings.Contains(string(blockVal), "rate") {
		t.Errorf("block value %s, %v: want no rate field", blockVal, err)
	}

	for _, tt := range []struct{ name, value, want string }{
		{"negative", `{"action":"throttle","created":"2026-01-01T00:00:00Z","rate":-1}`, "rate -1"},
		{"on a block", `{"action":"block","created":"2026-01-01T00:00:00Z","rate":5}`, "throttle entries"},
		{"huge", `{"action":"throttle","created":"2026-01-01T00:00:00Z","rate":1e12}`, "rate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeEntry("key.k", []byte(tt.value))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrMalformed mentioning %q", err, tt.want)
			}
		})
	}
	if _, _, err := EncodeEntry(enforce.Entry{Kind: enforce.KindKey, Value: "k", Action: enforce.ActionBlock, Rate: 1}); err == nil {
		t.Error("EncodeEntry accepted a rate on a block")
	}
}
