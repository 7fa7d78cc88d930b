package replay

import (
	"bytes"
	"testing"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

// fuzzImport imports data as format: it must not fail or panic, every
// string of every event must be valid UTF-8, and the capture must read
// back with one event for each written.
func fuzzImport(t *testing.T, format string, data []byte) {
	cfg := DefaultImportConfig()
	cfg.Format = format
	cfg.Proxy.Routes = []string{"GET /orders/{id}", "* /login"}
	cfg.Proxy.TrustedProxies = []string{"10.0.0.0/8"}
	cfg.Proxy.CaptureQueryValues = true
	cfg.Proxy.Capture.Body = proxy.CaptureValues
	if format == "nginx" {
		cfg.LogFormat = `$remote_addr [$msec] "$request" $status $request_time "$http_authorization" $host`
	}
	var out bytes.Buffer
	w, err := NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Import(cfg, []Input{{Name: "fuzz", R: bytes.NewReader(data)}}, w)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	evs := readAll(t, out.Bytes())
	if len(evs) != sum.Written {
		t.Fatalf("%d events read back, %d written", len(evs), sum.Written)
	}
	var last int64
	for _, e := range evs {
		if event.SanitizeEvent(e) {
			t.Fatalf("event with a string that is not UTF-8: %v", e)
		}
		if e.TimeUnixNano < last {
			t.Fatalf("events out of time order")
		}
		last = e.TimeUnixNano
	}
}

// Seeds are in testdata/fuzz/<FuzzName>/; these add the simplest cases.

func FuzzImportCombined(f *testing.F) {
	f.Add([]byte(`1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /orders/1?a=b HTTP/1.1" 200 5 "-" "ua"` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzImport(t, "combined", data) })
}

func FuzzImportNginx(f *testing.F) {
	f.Add([]byte(`10.1.1.1 [1709287200.123] "POST /login HTTP/1.1" 401 0.003 "Bearer x.y.z" api` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzImport(t, "nginx", data) })
}

func FuzzImportJSON(f *testing.F) {
	f.Add([]byte(`{"time":"2024-03-01T10:00:00Z","remote_addr":"1.2.3.4","request":"GET / HTTP/1.1","status":200}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzImport(t, "json", data) })
}

func FuzzImportHAR(f *testing.F) {
	f.Add([]byte(`{"log":{"entries":[{"startedDateTime":"2024-03-01T10:00:00.000Z","request":{"method":"GET","url":"http://h/orders/1"},"response":{"status":200}}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzImport(t, "har", data) })
}

func FuzzImportRawHTTP(f *testing.F) {
	f.Add([]byte("POST http://h/login HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\na=b\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzImport(t, "raw-http", data) })
}
