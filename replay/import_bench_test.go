package replay

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// combinedLines returns n access-log lines in Apache's combined format,
// a few clients a second, as a busy site writes them.
func combinedLines(n int) []byte {
	var b bytes.Buffer
	paths := []string{"/", "/orders/12345", "/api/v1/users/8f14e45fceea167a5a36dedd4bea2543/profile?fields=name,email",
		"/static/app.js", "/search?q=red+shoes&page=2"}
	for i := range n {
		fmt.Fprintf(&b, "203.0.113.%d - - [17/May/2015:10:%02d:%02d +0000] \"GET %s HTTP/1.1\" 200 %d \"https://shop.example/\" \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36\"\n",
			i%250, i/6000%60, i/100%60, paths[i%len(paths)], 1000+i%5000)
	}
	return b.Bytes()
}

// BenchmarkImportCombined measures the import of combined access-log
// lines into a capture, end to end (parse, proxy rules, sort, encode);
// lines/s is the figure of docs/benchmarks.md.
func BenchmarkImportCombined(b *testing.B) {
	const n = 100_000
	data := combinedLines(n)
	cfg := DefaultImportConfig()
	cfg.Format = "combined"
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		w, _ := NewWriter(io.Discard)
		sum, err := Import(cfg, []Input{{Name: "bench.log", R: bytes.NewReader(data)}}, w)
		if err != nil || sum.Written != n {
			b.Fatalf("%v, %+v", err, sum)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
}
