// Package evaldata reads the shared evaluation data sets (../shared/data
// from the repository root, or $APIGUARD_DATA) for tests: it skips a test
// when a set is absent, and splits CSIC 2010 files into requests. It
// imports nothing of the project, so any package's tests may use it.
package evaldata

import (
	"bufio"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// Dir returns the folder of data set sub, or skips the test if it is not
// there.
func Dir(t testing.TB, sub string) string {
	t.Helper()
	dir := os.Getenv("APIGUARD_DATA")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0) // …/internal/evaldata/evaldata.go
		dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "data")
	}
	dir = filepath.Join(dir, sub)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("evaluation data %s not present (set APIGUARD_DATA to the shared data folder): %v", dir, err)
	}
	return dir
}

// Gunzip opens a gzipped file, closed when the test ends.
func Gunzip(t testing.TB, path string) io.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return z
}

// CSICRequest is one request of a CSIC 2010 file: its request line
// ("GET http://localhost:8080/tienda1/… HTTP/1.1") and its body.
type CSICRequest struct {
	Line, Body string
}

var csicStart = regexp.MustCompile(`^(GET|POST|PUT) http`)

// CSIC reads the requests of a CSIC 2010 file (a name in csic2010/).
func CSIC(t testing.TB, file string) []CSICRequest {
	t.Helper()
	sc := bufio.NewScanner(Gunzip(t, filepath.Join(Dir(t, "csic2010"), file)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var out []CSICRequest
	inBody := false
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		switch {
		case csicStart.MatchString(l):
			out = append(out, CSICRequest{Line: l})
			inBody = false
		case l == "":
			inBody = true
		case inBody && len(out) > 0:
			out[len(out)-1].Body += l
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return out
}
