package proxy

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dataDir is the shared evaluation data (../shared/data from the
// repository root); APIGUARD_DATA overrides it.
func dataDir(t *testing.T, sub string) string {
	t.Helper()
	dir := os.Getenv("APIGUARD_DATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "data")
	}
	dir = filepath.Join(dir, sub)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("evaluation data %s not present (set APIGUARD_DATA to the shared data folder): %v", dir, err)
	}
	return dir
}

func gunzip(t *testing.T, path string) io.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// TestInjectionRatesHTTPParams measures libinjection, as the inspection
// check runs it, on the labelled parameter values of HttpParamsDataset.
func TestInjectionRatesHTTPParams(t *testing.T) {
	dir := dataDir(t, "httpparams")
	r := csv.NewReader(gunzip(t, filepath.Join(dir, "payload_train.csv.gz")))
	if _, err := r.Read(); err != nil {
		t.Fatal(err)
	}
	total, hits := map[string]int{}, map[string]int{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kind := rec[2]
		total[kind]++
		if detect("param", rec[0]) != nil {
			hits[kind]++
		}
	}
	rate := func(k string) float64 { return float64(hits[k]) / float64(total[k]) }
	for _, k := range []string{"sqli", "xss", "cmdi", "path-traversal", "norm"} {
		t.Logf("httpparams %-15s %5d values, flagged %5d (%.1f%%)", k, total[k], hits[k], 100*rate(k))
	}
	// Floors just under the measured figures (docs/proxy.md): a change to
	// the detection that loses ground fails here.
	if rate("sqli") < 0.95 || rate("xss") < 0.75 || rate("norm") > 0.005 {
		t.Errorf("sqli %.3f (want ≥ 0.95), xss %.3f (≥ 0.75), false positives on benign %.4f (≤ 0.005)",
			rate("sqli"), rate("xss"), rate("norm"))
	}
}

var csicStart = regexp.MustCompile(`^(GET|POST|PUT) http`)

// csicRequests splits a CSIC 2010 file into (request line, body) pairs.
func csicRequests(t *testing.T, r io.Reader) [][2]string {
	t.Helper()
	var out [][2]string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var line, body string
	inBody := false
	flush := func() {
		if line != "" {
			out = append(out, [2]string{line, body})
		}
	}
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		switch {
		case csicStart.MatchString(l):
			flush()
			line, body, inBody = l, "", false
		case l == "":
			inBody = true
		case inBody:
			body += l
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// csicFlagged runs the inspection's injection detection over a request's
// path segments, query values and form body values.
func csicFlagged(req [2]string) *finding {
	fields := strings.Fields(req[0])
	u, err := url.Parse(fields[1])
	if err != nil {
		return &finding{kind: "unparseable", where: "url"}
	}
	var found *finding
	look := func(where, v string) bool {
		if found == nil {
			found = detect(where, v)
		}
		return found == nil
	}
	for _, seg := range strings.Split(u.Path, "/") {
		look("path", seg)
	}
	for _, raw := range []string{u.RawQuery, req[1]} {
		vals, err := url.ParseQuery(raw)
		if err != nil {
			// As the proxy would: a malformed query is refused (400).
			return &finding{kind: "malformed", where: "query"}
		}
		inspectValues("param", vals, look)
	}
	return found
}

// TestInjectionRatesCSIC2010 measures the same detection on whole
// requests of CSIC 2010: false positives on the normal training set,
// detection on the anomalous development set (which also holds attacks no
// injection detector should see: parameter tampering, overflows, hidden
// resources).
func TestInjectionRatesCSIC2010(t *testing.T) {
	dir := dataDir(t, "csic2010")
	count := func(file string) (n, flagged int, kinds map[string]int) {
		kinds = map[string]int{}
		for _, req := range csicRequests(t, gunzip(t, filepath.Join(dir, file))) {
			n++
			if f := csicFlagged(req); f != nil {
				flagged++
				kinds[f.kind]++
			}
		}
		return n, flagged, kinds
	}
	nn, fn, kn := count("normalTrafficTraining.txt.gz")
	na, fa, ka := count("anomalousTrafficDev.txt.gz")
	fpr, tpr := float64(fn)/float64(nn), float64(fa)/float64(na)
	t.Logf("CSIC 2010 normal training: %d requests, flagged %d (FPR %.2f%%) %v", nn, fn, 100*fpr, kn)
	t.Logf("CSIC 2010 anomalous dev:   %d requests, flagged %d (TPR %.1f%%) %v", na, fa, 100*tpr, ka)
	if fpr > 0.005 || tpr < 0.09 {
		t.Errorf("FPR %.4f (want ≤ 0.005), TPR %.3f (want ≥ 0.09)", fpr, tpr)
	}
}
