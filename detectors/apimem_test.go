package detectors

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"testing"
	"time"
)

// TestUniquePathsCostLittle sends a scanner's traffic, every request on a
// path of its own (unconfigured paths are templated one API each), and
// measures what each such API costs the engine: an API that never gives
// its baselines a sample must not hold their rings (5 × 512 samples, about
// 20 KiB), or a scan of a million paths would exhaust the pipeline.
func TestUniquePathsCostLittle(t *testing.T) {
	const n = 20000
	e := newEngine(t, nil)
	scanner := who{key: "", ip: "203.0.113.9", ua: "Nuclei", hdr: "h1:scan"}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		path := fmt.Sprintf("/scan/%08x/admin.php", i*2654435761)
		ev := scanner.event(time.Duration(i)*10*time.Millisecond, "GET "+path, path)
		ev.Status = 404
		e.Observe(ev)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if len(e.st.APIs) < n {
		t.Fatalf("%d APIs, want %d (the test needs one per path)", len(e.st.APIs), n)
	}
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes per unique-path API", per)
	if per > 4096 {
		t.Errorf("%.0f bytes per API that never gave a sample, want at most 4 KiB", per)
	}
	runtime.KeepAlive(e)
}

// TestIdleAPIsThatLearntNothingAreDropped: once idle for idle_after, the
// APIs a scan created (none warm, though the first got a sample) are
// dropped, and an API whose baselines are warm is kept however long it is
// quiet.
func TestIdleAPIsThatLearntNothingAreDropped(t *testing.T) {
	e := newEngine(t, nil)
	runAll(e, sorted(crowd(1, "user", 10, map[string]float64{"GET /search": 1}, 0, 5*time.Minute)))
	scanner := who{ip: "203.0.113.9", ua: "Nuclei", hdr: "h1:scan"}
	for i := range 1000 {
		path := fmt.Sprintf("/scan/%d/admin.php", i)
		ev := scanner.event(5*time.Minute+time.Duration(i)*10*time.Millisecond, "GET "+path, path)
		ev.Status = 404
		e.Observe(ev)
	}
	if len(e.st.APIs) != 1001 {
		t.Fatalf("%d APIs before the idle time, want 1001", len(e.st.APIs))
	}
	e.Observe(member("late", 1).event(3*time.Hour, "GET /late", "/late"))
	got := slices.Sorted(maps.Keys(e.st.APIs))
	if !slices.Equal(got, []string{"GET /late", "GET /search"}) {
		t.Errorf("after idle_after: %d APIs %q, want GET /search (it learnt) and GET /late", len(got), got)
	}
}
