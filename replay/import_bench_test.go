package replay

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time (user and system) the process has used. On a
// shared machine the benchmarks report lines per CPU-second next to lines
// per second: with GOMAXPROCS=1 it is the rate of one core of our own.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

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
	cpu := cpuTime()
	for range b.N {
		w, _ := NewWriter(io.Discard)
		sum, err := Import(cfg, []Input{{Name: "bench.log", R: bytes.NewReader(data)}}, w)
		if err != nil || sum.Written != n {
			b.Fatalf("%v, %+v", err, sum)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(n*b.N)/(cpuTime()-cpu).Seconds(), "lines/cpu-s")
}

// BenchmarkImportSharedData imports the real access logs and the CSIC
// 2010 requests of ../shared/data (gzip included); lines/s counts the
// lines of the decompressed input.
func BenchmarkImportSharedData(b *testing.B) {
	for _, tc := range []struct{ file, format string }{
		{"real-access-logs/elastic-semicomplete-17-18may2015.log.gz", "combined"},
		{"real-access-logs/honeynet-2004-apr-may.log.gz", "combined"},
		{"csic2010/normalTrafficTraining.txt.gz", "raw-http"},
	} {
		b.Run(filepath.Base(tc.file), func(b *testing.B) {
			path := filepath.Join("..", "..", "shared", "data", tc.file)
			data, err := os.ReadFile(path)
			if err != nil {
				b.Skipf("%s is absent (the shared evaluation data, see ../shared/data/README.md): %v", path, err)
			}
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				b.Fatal(err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil {
				b.Fatal(err)
			}
			lines := bytes.Count(plain, []byte{'\n'})
			cfg := DefaultImportConfig()
			cfg.Format = tc.format
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for range b.N {
				w, _ := NewWriter(io.Discard)
				if _, err := Import(cfg, []Input{{Name: path, R: bytes.NewReader(data)}}, w); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(lines*b.N)/b.Elapsed().Seconds(), "lines/s")
			b.ReportMetric(float64(lines*b.N)/(cpuTime()-cpu).Seconds(), "lines/cpu-s")
		})
	}
}
