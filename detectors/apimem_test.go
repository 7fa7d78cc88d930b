package detectors

import (
	"fmt"
	"runtime"
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
