package enforce

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// saveFixture is a matcher holding every kind and action, an allow entry
// with the analyst's fields, a throttle with a rate and an entry that has
// expired by t0.
func saveFixture(t testing.TB) *Matcher {
	m := NewMatcher()
	errs := m.Replace([]Entry{
		{Kind: KindIP, Value: "203.0.113.7", Action: ActionBlock, Expires: t0.Add(time.Hour), Trigger: t0.Add(-time.Second), Reason: "dropped"},
		{Kind: KindIP, Value: "2001:db8::1", Action: ActionRevoke},
		{Kind: KindCIDR, Value: "198.51.100.0/24", Action: ActionThrottle, Rate: 2.5},
		{Kind: KindCIDR, Value: "10.0.0.0/8", Action: ActionAllow, Reason: "office", Actor: "operator:ann", AnomalyID: "a1", Created: t0.Add(-time.Hour)},
		{Kind: KindKey, Value: "k-bad", Action: ActionBlock},
		{Kind: KindToken, Value: "jti-1", Action: ActionRevoke},
		{Kind: KindSub, Value: "mallory", Action: ActionThrottle, Rate: 0.5},
		{Kind: KindFP, Value: "fp:shared", Action: ActionAllow, Reason: "common browser", Actor: "operator:bob"},
		{Kind: KindKey, Value: "k-old", Action: ActionBlock, Expires: t0},
	})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return m
}

func sortedEntries(m *Matcher) []string {
	var out []string
	for _, e := range m.Entries() {
		out = append(out, fmt.Sprintf("%+v", e))
	}
	slices.Sort(out)
	return out
}

// TestSaveRestore: what Restore reads is what Save wrote, less the
// entries expired at the time of the restore, with the position.
func TestSaveRestore(t *testing.T) {
	m := saveFixture(t)
	var buf bytes.Buffer
	pos := Position{Source: "KV_APIGUARD_ENFORCEMENT@2026-11-30T00:00:00Z", Revision: 42}
	if err := m.Save(&buf, pos, t0); err != nil {
		t.Fatal(err)
	}
	b, info, err := Restore(buf.Bytes(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if info.Position != pos || !info.Saved.Equal(t0) || info.Entries != 9 || info.Expired != 1 {
		t.Errorf("info %+v", info)
	}
	got := NewMatcher()
	got.Load(b)
	// The expired entry is left out; everything else is the same.
	m.Apply([]Change{Delete(Key{KindKey, "k-old"})})
	if want, have := sortedEntries(m), sortedEntries(got); !reflect.DeepEqual(want, have) {
		t.Errorf("restored entries\n%s\nwant\n%s", strings.Join(have, "\n"), strings.Join(want, "\n"))
	}
	if e := got.Allowed(Key{KindIP, "10.1.2.3"}, t0); e == nil || e.Reason != "office" || e.Actor != "operator:ann" {
		t.Errorf("restored allow entry: %+v", e)
	}
	v := got.Match(&Identity{IP: netip.MustParseAddr("198.51.100.9")}, t0)
	if v.Action != ActionThrottle || v.Entry.Rate != 2.5 {
		t.Errorf("restored throttle: %+v", v.Entry)
	}
	if v := got.Match(&Identity{IP: netip.MustParseAddr("203.0.113.7")}, t0); !v.Entry.Trigger().Equal(t0.Add(-time.Second)) {
		t.Errorf("restored trigger: %v", v.Entry.Trigger())
	}
}

// TestRestoreRefusesDamage: a truncated, corrupt or foreign file is an
// error that says what is wrong, never a partial state.
func TestRestoreRefusesDamage(t *testing.T) {
	var buf bytes.Buffer
	if err := saveFixture(t).Save(&buf, Position{Source: "s", Revision: 1}, t0); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	flip := slices.Clone(good)
	flip[len(flip)/2] ^= 0x40
	version := slices.Clone(good)
	version[len(saveMagic)] = 9
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not an enforcement snapshot"},
		{"other file", []byte("# a list of addresses\n192.0.2.1\n"), "not an enforcement snapshot"},
		{"truncated", good[:len(good)-10], "checksum"},
		{"flipped bit", flip, "checksum"},
		{"other version", version, "format version 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _, err := Restore(tt.data, t0)
			if !errors.Is(err, ErrBadSave) || !strings.Contains(err.Error(), tt.want) || b != nil {
				t.Errorf("Restore = %v, %v; want ErrBadSave saying %q", b, err, tt.want)
			}
		})
	}
}

// FuzzRestore: no input makes Restore panic, and what it accepts saves
// again to state that restores the same. The input is the file less its
// checksum, which the target appends, so that the fuzzer reaches the
// decoder behind it; the seeds are in testdata/fuzz/FuzzRestore.
func FuzzRestore(f *testing.F) {
	var buf bytes.Buffer
	if err := saveFixture(f).Save(&buf, Position{Source: "s", Revision: 7}, t0); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes()[:buf.Len()-4])
	f.Fuzz(func(t *testing.T, body []byte) {
		data := binary.BigEndian.AppendUint32(slices.Clone(body), crc32.Checksum(body, castagnoli))
		b, info, err := Restore(data, t0)
		if err != nil {
			if !errors.Is(err, ErrBadSave) {
				t.Fatalf("error %v does not wrap ErrBadSave", err)
			}
			return
		}
		m := NewMatcher()
		m.Load(b)
		var again bytes.Buffer
		if err := m.Save(&again, info.Position, t0); err != nil {
			t.Fatal(err)
		}
		b2, info2, err := Restore(again.Bytes(), t0)
		if err != nil {
			t.Fatalf("restoring what was saved: %v", err)
		}
		m2 := NewMatcher()
		m2.Load(b2)
		if info2.Position != info.Position || !reflect.DeepEqual(sortedEntries(m), sortedEntries(m2)) {
			t.Fatalf("second restore differs")
		}
	})
}
