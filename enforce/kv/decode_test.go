package kv

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
)

// TestDecodeFastTakesWhatEncodeWrites: the values the writer puts are
// all decoded on the fast path, the same as the strict decoder does.
func TestDecodeFastTakesWhatEncodeWrites(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.UTC)
	for _, e := range []enforce.Entry{
		{Kind: enforce.KindIP, Value: "192.0.2.1", Action: enforce.ActionBlock, Reason: "scan", Actor: "policy:default", AnomalyID: "01J", Created: now, Expires: now.Add(time.Hour), Trigger: now},
		{Kind: enforce.KindKey, Value: "k", Action: enforce.ActionAllow, Reason: "partner", Actor: "operator:ann", Created: now},
		{Kind: enforce.KindSub, Value: "é", Action: enforce.ActionRevoke, Reason: "ünïcode", Created: now},
	} {
		key, value, err := EncodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		var w fastEntry
		if !decodeFast(value, &w) {
			t.Errorf("fast path refused %s", value)
		}
		got, err := DecodeEntry(key, value)
		if err != nil || got != e {
			t.Errorf("DecodeEntry(%s) = %+v, %v; want %+v", value, got, err, e)
		}
		compact, err := decodeCompact(key, value)
		want := e
		if e.Action != enforce.ActionAllow {
			want.Reason, want.Actor, want.AnomalyID = "", "", ""
		}
		if err != nil || compact != want {
			t.Errorf("decodeCompact(%s) = %+v, %v; want %+v", value, compact, err, want)
		}
	}
}

// FuzzDecodeFast: whatever the fast path accepts, the strict decoder
// accepts too, with the same fields. Seeds in testdata/fuzz/FuzzDecodeFast.
func FuzzDecodeFast(f *testing.F) {
	f.Add([]byte(`{"action":"block","reason":"r","created":"2026-11-30T12:00:00Z","expires":"2026-11-30T13:00:00.5Z"}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		var fw fastEntry
		if !decodeFast(value, &fw) {
			return
		}
		var w wireEntry
		dec := json.NewDecoder(bytes.NewReader(value))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&w); err != nil {
			t.Fatalf("fast path accepted %q, the strict decoder says %v", value, err)
		}
		if w.Action != string(fw.action) || w.Reason != string(fw.reason) || w.AnomalyID != string(fw.anomalyID) || w.Actor != string(fw.actor) ||
			!w.Created.Equal(fw.created) || !w.Expires.Equal(fw.expires) || !w.Trigger.Equal(fw.trigger) || w.Rate != 0 {
			t.Fatalf("%q: fast %+v, strict %+v", value, fw, w)
		}
	})
}
