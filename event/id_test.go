package event

import (
	"fmt"
	"hash/fnv"
	"sort"
	"testing"
	"time"
)

func TestIDsSortAndAreUnique(t *testing.T) {
	s := NewIDSource()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var ids []string
	seen := map[string]bool{}
	for i := range 5000 {
		id := s.New(base.Add(time.Duration(i/100) * time.Millisecond))
		if len(id) != IDLen {
			t.Fatalf("id %q has length %d", id, len(id))
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if !sort.StringsAreSorted(ids) {
		t.Error("ids made in order do not sort in order")
	}
	got, ok := IDTime(ids[len(ids)-1])
	if !ok || !got.Equal(base.Add(49*time.Millisecond)) {
		t.Errorf("IDTime = %v %v, want %v", got, ok, base.Add(49*time.Millisecond))
	}
}

func TestHashIDDeterministic(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_000)
	a, b := HashID(at, "rate", "key:k1", "E1"), HashID(at, "rate", "key:k1", "E1")
	if a != b {
		t.Errorf("same input gave %q and %q", a, b)
	}
	if c := HashID(at, "rate", "key:k2", "E1"); c == a {
		t.Error("different input gave the same id")
	}
	if ts, ok := IDTime(a); !ok || !ts.Equal(at) {
		t.Errorf("IDTime(HashID) = %v %v", ts, ok)
	}
}

func TestIDTimeRejects(t *testing.T) {
	for _, id := range []string{"", "short", "UUUUUUUUUUUUUUUUUUUUUUUUU!", "ZZZZZZZZZZZZZZZZZZZZZZZZZZ"} {
		if _, ok := IDTime(id); ok {
			t.Errorf("IDTime(%q) accepted", id)
		}
	}
}

func TestPartitionStable(t *testing.T) {
	// Part of the wire contract: proxies and pipelines of different versions
	// must agree, so the values are pinned, and checked against hash/fnv.
	tests := []struct {
		kind, value string
		n, want     int
	}{
		{KindKey, "partner-42", 8, 5},
		{KindKey, "partner-42", 1024, 661},
		{KindIP, "203.0.113.7", 8, 1},
		{KindSub, "alice", 1024, 1007},
		{KindToken, "9f86d081884c7d65", 8, 5},
	}
	for _, tt := range tests {
		h := fnv.New32a()
		h.Write([]byte(tt.kind + ":" + tt.value))
		ref := int(h.Sum32() % uint32(tt.n))
		if got := Partition(tt.kind, tt.value, tt.n); got != tt.want || got != ref {
			t.Errorf("Partition(%s, %s, %d) = %d, want %d (hash/fnv gives %d)", tt.kind, tt.value, tt.n, got, tt.want, ref)
		}
	}
	// Spread: 10,000 principals over 8 partitions, none empty or > 2× its share.
	counts := make([]int, 8)
	for i := range 10000 {
		counts[Partition(KindIP, fmt.Sprintf("10.0.%d.%d", i/256, i%256), 8)]++
	}
	for p, c := range counts {
		if c == 0 || c > 2500 {
			t.Errorf("partition %d has %d of 10000", p, c)
		}
	}
}

func TestPrincipalOf(t *testing.T) {
	tests := []struct {
		name       string
		ev         *RequestEvent
		kind, want string
	}{
		{"key wins", &RequestEvent{ApiKeyId: "k", Subject: "s", ClientIp: []byte{10, 0, 0, 1}}, KindKey, "k"},
		{"subject", &RequestEvent{Subject: "s", TokenHash: "h"}, KindSub, "s"},
		{"jti", &RequestEvent{TokenId: "j", TokenHash: "h"}, KindToken, "j"},
		{"token hash", &RequestEvent{TokenHash: "h"}, KindToken, "h"},
		{"ip", &RequestEvent{ClientIp: []byte{10, 0, 0, 1}}, KindIP, "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, v := PrincipalOf(tt.ev)
			if k != tt.kind || v != tt.want {
				t.Errorf("got %s:%s, want %s:%s", k, v, tt.kind, tt.want)
			}
		})
	}
}
