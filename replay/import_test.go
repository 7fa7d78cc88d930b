package replay

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

// importString imports one input and reads the capture back.
func importString(t testing.TB, cfg ImportConfig, input string) (*ImportSummary, []*event.RequestEvent) {
	t.Helper()
	var out bytes.Buffer
	w, err := NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Import(cfg, []Input{{Name: "in.log", R: strings.NewReader(input)}}, w)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return sum, readAll(t, out.Bytes())
}

func readAll(t testing.TB, b []byte) []*event.RequestEvent {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b), "capture")
	if err != nil {
		t.Fatal(err)
	}
	var evs []*event.RequestEvent
	for {
		ev := new(event.RequestEvent)
		if _, err := r.Next(ev); errors.Is(err, io.EOF) {
			return evs
		} else if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
}

func importConfig(format string) ImportConfig {
	cfg := DefaultImportConfig()
	cfg.Format = format
	cfg.Proxy.Routes = []string{"GET /orders/{id}"}
	return cfg
}

func TestImportCombined(t *testing.T) {
	in := `203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /orders/42?a=1&b=2 HTTP/1.1" 200 512 "https://shop.example/" "curl/8.0"
203.0.113.8 - - [17/May/2015:10:05:03 +0000] "GET /items/123/reviews HTTP/1.1" 404 - "-" "Mozilla/5.0 \"quoted\""
203.0.113.9 - - [17/May/2015:10:05:02 +0000] "POST /login HTTP/1.1" 302 0
garbage that is not a log line
203.0.113.7 - - [17/May/2015:10:05:03 +0000] "\x16\x03\x01" 400 226 "-" "-"
`
	sum, evs := importString(t, importConfig("combined"), in)
	if sum.Written != 3 || sum.Bad != 2 {
		t.Fatalf("written %d, bad %d, want 3 and 2: %v", sum.Written, sum.Bad, sum.Reported)
	}
	if !strings.HasPrefix(sum.Reported[0], "in.log:4: ") || !strings.HasPrefix(sum.Reported[1], "in.log:5: ") {
		t.Errorf("reported %q, want lines 4 and 5", sum.Reported)
	}
	// In time order; the two of 10:05:03 half a second apart, in file order.
	if evs[0].Method != "POST" || evs[1].Api != "GET /orders/{id}" || evs[2].Api != "GET /items/{id}/reviews" {
		t.Fatalf("order or APIs: %s, %s, %s", evs[0].Api, evs[1].Api, evs[2].Api)
	}
	if d := evs[2].TimeUnixNano - evs[1].TimeUnixNano; d != int64(500*time.Millisecond) {
		t.Errorf("same-second requests %v apart, want 500ms", time.Duration(d))
	}
	e := evs[1]
	if event.ClientIPString(e.ClientIp) != "203.0.113.7" || e.Status != 200 || e.ResponseBytes != 512 || e.UserAgent != "curl/8.0" ||
		e.Referer != "https://shop.example/" || len(e.Query) != 2 || e.Query[0].Name != "a" || e.Query[0].Value != "" ||
		e.Decision != event.Decision_DECISION_ALLOW {
		t.Errorf("event %v", e)
	}
	if evs[2].UserAgent != `Mozilla/5.0 "quoted"` {
		t.Errorf("user agent %q: want the escaped quotes read", evs[2].UserAgent)
	}
	if sum.Missing["user_agent"] != 1 || sum.Missing["referer"] != 2 || sum.Missing["host"] != 3 || sum.Missing["header_fingerprint"] != 3 {
		t.Errorf("missing %v", sum.Missing)
	}
	// Deterministic: the same input gives the same ids.
	_, again := importString(t, importConfig("combined"), in)
	for i := range evs {
		if evs[i].Id != again[i].Id {
			t.Fatalf("event %d: id %s then %s", i, evs[i].Id, again[i].Id)
		}
	}
}

func TestImportNginxLogFormat(t *testing.T) {
	cfg := importConfig("nginx")
	cfg.LogFormat = `$remote_addr [$time_iso8601] $host "$request_method $request_uri" $status $body_bytes_sent $request_time "$http_x_api_key"`
	in := "198.51.100.1 [2024-03-01T10:00:00+00:00] api.example \"GET /orders/7\" 200 10 0.250 \"k1.secret\"\n" +
		"198.51.100.1 [2024-03-01T10:00:01+00:00] api.example \"GET /x\" 200 10 nope \"-\"\n"
	sum, evs := importString(t, cfg, in)
	if sum.Written != 1 || sum.Bad != 1 || !strings.Contains(sum.Reported[0], "in.log:2: $request_time") {
		t.Fatalf("%+v", sum)
	}
	e := evs[0]
	if e.Host != "api.example" || e.ApiKeyId != "k1" || e.DurationNanos != int64(250*time.Millisecond) || e.Api != "GET /orders/{id}" {
		t.Errorf("event %v", e)
	}
	if _, err := newLogFormat(`$remote_addr$status`); err == nil {
		t.Error("adjacent variables accepted")
	}
}

func TestImportJSON(t *testing.T) {
	cfg := importConfig("json")
	cfg.Fields = map[string]string{"client_ip": "client.addr"}
	in := `{"time":"2024-03-01T10:00:00.123Z","client":{"addr":"192.0.2.4"},"method":"GET","uri":"/orders/9?x=1","status":201,"request_time":"0.010","http_authorization":"Bearer abc"}
{"time":1709287200,"request":"DELETE /orders/1 HTTP/1.1","status":"204"}
{"time":"yesterday","request":"GET / HTTP/1.1"}
[1,2]
{"method":"GET"}
`
	sum, evs := importString(t, cfg, in)
	if sum.Written != 2 || sum.Bad != 3 {
		t.Fatalf("%+v", sum)
	}
	var get *event.RequestEvent
	for _, e := range evs {
		if e.Method == "GET" {
			get = e
		}
	}
	if get == nil || event.ClientIPString(get.ClientIp) != "192.0.2.4" || get.Status != 201 || get.TokenHash == "" ||
		get.Api != "GET /orders/{id}" || get.TimeUnixNano%int64(time.Second) != int64(123*time.Millisecond) {
		t.Errorf("event %v", get)
	}
	if _, err := newJSONFormat(map[string]string{"nope": "x"}); err == nil || !strings.Contains(err.Error(), "client_ip") {
		t.Errorf("unknown field: %v", err)
	}
}

func TestImportHAR(t *testing.T) {
	in := `{"log":{"version":"1.2","creator":{"name":"x"},"entries":[
 {"startedDateTime":"2024-03-01T10:00:00.500Z","time":42.5,"request":{"method":"POST","url":"https://api.example/orders/5?debug=1",
  "headers":[{"name":"X-API-Key","value":"k9.s"},{"name":"User-Agent","value":"ua"}],"bodySize":17},
  "response":{"status":200,"bodySize":100},"timings":{"wait":30}},
 {"startedDateTime":"2024-03-01T10:00:00.100Z","request":{"method":"GET","url":"https://api.example/orders/6","headers":[]},
  "response":{"status":304,"bodySize":-1,"content":{"size":-1}}},
 {"startedDateTime":"not a time","request":{"method":"GET","url":"https://api.example/"},"response":{"status":200}},
 {"request":"oops"}
]}}`
	sum, evs := importString(t, importConfig("har"), in)
	if sum.Written != 2 || sum.Bad != 2 {
		t.Fatalf("%+v", sum)
	}
	if !strings.HasPrefix(sum.Reported[0], "in.log:6: entry 2") {
		t.Errorf("reported %q", sum.Reported)
	}
	if evs[0].Path != "/orders/6" || evs[0].DurationNanos != 0 {
		t.Errorf("first %v", evs[0])
	}
	e := evs[1]
	if e.Host != "api.example" || e.ApiKeyId != "k9" || e.RequestBytes != 17 || e.DurationNanos != int64(42500*time.Microsecond) ||
		e.UpstreamLatencyNanos != int64(30*time.Millisecond) || e.Api != "POST /orders/{id}" || len(e.Query) != 1 {
		t.Errorf("event %v", e)
	}
	if sum.Missing["duration"] != 1 || sum.Missing["client_ip"] != 2 {
		t.Errorf("missing %v", sum.Missing)
	}
}

func TestImportRawHTTP(t *testing.T) {
	in := "GET http://localhost:8080/tienda1/index.jsp HTTP/1.1\r\nUser-Agent: Konqueror\r\nHost: localhost:8080\r\n\r\n\r\n" +
		"POST http://localhost:8080/tienda1/publico/anadir.jsp HTTP/1.1\r\nHost: localhost:8080\r\nContent-Length: 10\r\n\r\nid=2&x=%zz\r\n\r\n" +
		"\x00\x01junk\r\nmore junk\r\n" +
		"GET /no-host HTTP/1.1\r\nAccept: */*\r\n\r\n" +
		"GET /a%zzb?c=%C0%AF HTTP/1.1\r\nHost: h\r\nbad header line\r\n\r\n" +
		"GET /ok/%C0%AF HTTP/1.0\r\n\r\n"
	cfg := importConfig("raw-http")
	sum, evs := importString(t, cfg, in)
	if sum.Written != 3 || sum.Bad != 3 {
		t.Fatalf("%+v", sum)
	}
	for _, want := range []string{"in.log:12: 2 lines that are not part", "in.log:14: no Host", "in.log:17: header line"} {
		if !slices.ContainsFunc(sum.Reported, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("reported %q, want %q", sum.Reported, want)
		}
	}
	if evs[0].Host != "localhost:8080" || evs[0].UserAgent != "Konqueror" || evs[0].Path != "/tienda1/index.jsp" ||
		evs[0].HeaderFingerprint != proxy.HeaderOrderFingerprint([]string{"User-Agent", "Host"}) {
		t.Errorf("first %v", evs[0])
	}
	if evs[1].RequestBytes != 10 || evs[1].Method != "POST" || evs[1].TimeUnixNano-evs[0].TimeUnixNano != int64(time.Second) {
		t.Errorf("second %v", evs[1])
	}
	if evs[2].Path != "/ok/%C0%AF" || !utf8.ValidString(evs[2].Api) || sum.NotUTF8Paths != 1 {
		t.Errorf("third %v, %d not UTF-8", evs[2], sum.NotUTF8Paths)
	}
}

// TestImportBadInput: each kind of bad input is counted and reported, and
// what could be read is imported.
func TestImportBadInput(t *testing.T) {
	good := `203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "-"` + "\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	for range 2000 {
		zw.Write([]byte(good))
	}
	zw.Close()
	truncated := gz.Bytes()[:gz.Len()/2]
	long := `203.0.113.7 - - [17/May/2015:10:05:03 +0000] "GET /` + strings.Repeat("a", maxLine+10) + ` HTTP/1.1" 200 1 "-" "-"` + "\n"
	worm := `203.0.113.9 - - [17/May/2015:10:05:04 +0000] "SEARCH /` + "\x90\x02\xb1\x02" + ` HTTP/1.1" 414 1 "-" "-"` + "\n"
	for _, tc := range []struct {
		name      string
		input     string
		written   int
		bad       int
		fileError string
	}{
		{"gzip", gz.String(), 2000, 0, ""},
		{"truncated gzip", string(truncated), -1, 0, "truncated"},
		{"binary junk", good + "\x00\xff\xfe\x01\x02\n" + good, 2, 1, ""},
		{"line over 1 MiB", good + long + good, 2, 1, ""},
		{"not UTF-8", worm, 1, 0, ""},
		{"empty", "", 0, 0, ""},
		{"no newline at the end", strings.TrimSuffix(good, "\n"), 1, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum, evs := importString(t, importConfig("combined"), tc.input)
			if tc.written >= 0 && sum.Written != tc.written || sum.Bad != tc.bad {
				t.Errorf("written %d, bad %d: %+v", sum.Written, sum.Bad, sum)
			}
			if tc.fileError != "" && (len(sum.FileErrors) != 1 || !strings.Contains(sum.FileErrors[0], tc.fileError)) {
				t.Errorf("file errors %q, want %q", sum.FileErrors, tc.fileError)
			}
			if tc.fileError != "" && (sum.Written == 0 || sum.Written >= 2000) {
				t.Errorf("written %d of a truncated file: want what was read before the end", sum.Written)
			}
			for _, e := range evs {
				if event.SanitizeEvent(e) {
					t.Errorf("event with a string that is not UTF-8: %v", e)
				}
			}
		})
	}
}

func TestImportUnknownFormat(t *testing.T) {
	cfg := DefaultImportConfig()
	cfg.Format = "w3c"
	w, _ := NewWriter(io.Discard)
	_, err := Import(cfg, nil, w)
	if err == nil || !strings.Contains(err.Error(), "combined, har, json, nginx, raw-http") {
		t.Errorf("err %v, want the known formats listed", err)
	}
}

// TestImportSharedData imports the real access logs and the CSIC 2010
// requests from ../shared/data and checks the counts their READMEs give.
func TestImportSharedData(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "data")
	for _, tc := range []struct {
		file, format string
		lines        int
	}{
		{"real-access-logs/elastic-semicomplete-17-18may2015.log.gz", "combined", 4525},
		{"real-access-logs/honeynet-2004-apr-may.log.gz", "combined", 19729},
		{"csic2010/anomalousTrafficDev.txt.gz", "raw-http", 5013},
		{"csic2010/normalTrafficTraining.txt.gz", "raw-http", 36000},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			f, err := os.Open(path)
			if err != nil {
				t.Skipf("%s is absent (the shared evaluation data, see ../shared/data/README.md): %v", path, err)
			}
			defer f.Close()
			var out bytes.Buffer
			w, _ := NewWriter(&out)
			sum, err := Import(importConfig(tc.format), []Input{{Name: path, R: f}}, w)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", sum)
			lines := sum.Inputs()
			if tc.format == "combined" && lines != tc.lines || tc.format == "raw-http" && sum.Written != tc.lines {
				t.Errorf("%d lines or requests accounted for, want %d", lines, tc.lines)
			}
			if len(sum.FileErrors) > 0 {
				t.Errorf("file errors %v", sum.FileErrors)
			}
			var last int64
			for _, e := range readAll(t, out.Bytes()) {
				if e.TimeUnixNano < last {
					t.Fatalf("event %s before the one written before it", e.Id)
				}
				last = e.TimeUnixNano
			}
		})
	}
}

// TestImportBodyCapture: with proxy.capture.body set, a raw request's form
// body and a HAR entry's JSON body become body parameters, as the proxy
// records them.
func TestImportBodyCapture(t *testing.T) {
	cfg := importConfig("raw-http")
	cfg.Proxy.Capture.Body = proxy.CaptureValues
	in := "POST /login HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 25\r\n\r\n" +
		"user=bob&pwd=x&q=%27+OR+1\r\n\r\n"
	_, evs := importString(t, cfg, in)
	var got []string
	for _, q := range evs[0].Query {
		got = append(got, q.Name+"="+q.Value)
	}
	if want := []string{"body.user=bob", "body.pwd=" + proxy.Redacted, "body.q=' OR 1"}; !slices.Equal(got, want) {
		t.Errorf("parameters %q, want %q", got, want)
	}
	cfg.Format = "har"
	har := `{"log":{"entries":[{"startedDateTime":"2024-03-01T10:00:00Z","request":{"method":"POST","url":"http://h/orders",
 "postData":{"mimeType":"application/json","text":"{\"sku\":\"A1\"}"}},"response":{"status":201}}]}}`
	_, evs = importString(t, cfg, har)
	if len(evs) != 1 || len(evs[0].Query) != 1 || evs[0].Query[0].Name != "body.$.sku" || evs[0].Query[0].Value != "A1" {
		t.Errorf("HAR events %v", evs)
	}
}
