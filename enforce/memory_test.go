package enforce

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// scaleEntry is the i-th entry of the mix the scale figures use: 40%
// addresses (a tenth of them IPv6), 10% /24 networks, 30% API keys, 20%
// subjects, every second one with an expiry.
func scaleEntry(i int, now time.Time) Entry {
	e := Entry{Action: ActionBlock, Reason: "threat feed", Actor: "operator:bench", Created: now}
	switch r := i % 10; {
	case r < 4 && i%40 == 0:
		e.Kind, e.Value = KindIP, fmt.Sprintf("2001:db8:%x:%x::1", i>>16&0xffff, i&0xffff)
	case r < 4:
		e.Kind, e.Value = KindIP, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
	case r == 4:
		e.Kind, e.Value = KindCIDR, fmt.Sprintf("%d.%d.%d.0/24", 100+i>>16&63, i>>8&255, i&255)
	case r < 8:
		e.Kind, e.Value = KindKey, fmt.Sprintf("ak_live_%016x", uint64(i)*0x9e3779b97f4a7c15)
	default:
		e.Kind, e.Value = KindSub, fmt.Sprintf("user-%d@example.com", i)
	}
	if i%2 == 0 {
		e.Expires = now.Add(6 * time.Hour)
	}
	return e
}

// BenchmarkMatcherMemory builds a 1,000,000-entry matcher as a full load
// does (one Builder, values as the decoder gives them) and reports the
// heap it holds per entry (B/entry), and the same after a restore from
// saved state (restored-B/entry, values sharing one string).
func BenchmarkMatcherMemory(b *testing.B) {
	const n = 1_000_000
	now := time.Now()
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for b.Loop() {
		before := heap()
		bl := NewBuilder()
		for i := range n {
			if err := bl.Put(scaleEntry(i, now)); err != nil {
				b.Fatal(err)
			}
		}
		m := NewMatcher()
		m.Load(bl)
		after := heap()
		b.ReportMetric(float64(after-before)/n, "B/entry")

		var buf bytesBuffer
		if err := m.Save(&buf, Position{Source: "s", Revision: 1}, now); err != nil {
			b.Fatal(err)
		}
		m = nil
		data := buf.b
		buf.b = nil
		before = heap()
		rb, _, err := Restore(data, now)
		if err != nil {
			b.Fatal(err)
		}
		data = nil
		m2 := NewMatcher()
		m2.Load(rb)
		after = heap()
		b.ReportMetric(float64(after-before)/n, "restored-B/entry")
		runtime.KeepAlive(m2)
	}
}

// bytesBuffer is a plain growing buffer the benchmark can drop.
type bytesBuffer struct{ b []byte }

func (w *bytesBuffer) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// BenchmarkRestore reads saved state of 200,000 entries of the scale mix
// into a matcher, as a proxy does at start.
func BenchmarkRestore(b *testing.B) {
	const n = 200_000
	now := time.Now()
	bl := NewBuilder()
	for i := range n {
		if err := bl.Put(scaleEntry(i, now)); err != nil {
			b.Fatal(err)
		}
	}
	m := NewMatcher()
	m.Load(bl)
	var buf bytesBuffer
	if err := m.Save(&buf, Position{Source: "s", Revision: 1}, now); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		rb, _, err := Restore(buf.b, now)
		if err != nil {
			b.Fatal(err)
		}
		NewMatcher().Load(rb)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
}
