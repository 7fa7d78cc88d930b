package replay

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/event"
)

// TestBacktestInvalidUTF8 backtests a capture whose events carry bytes
// that are not UTF-8, as proxies before the fix wrote them (a worm's path
// decoded from %c0%af, a Latin-1 user agent, an API key id from a header),
// and a valid user agent long enough that an anomaly's summary clips it
// inside a character. The reader hands the detectors valid events, and
// every anomaly encodes with protojson, as `replay backtest --anomalies`
// writes them.
func TestBacktestInvalidUTF8(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	evs := []*event.RequestEvent{
		{Id: "w1", TimeUnixNano: t0, Api: "GET /scripts/..\xc0\xaf../winnt/system32/cmd.exe", Method: "GET",
			Path: "/scripts/..%c0%af../winnt/system32/cmd.exe", Query: []*event.QueryParam{{Name: "\xff\xfe", Value: "caf\xe9"}},
			UserAgent: "sqlmap/1.8 caf\xe9", ApiKeyId: "k\xff", Referer: "http://x/\xff", Status: 404,
			ClientIp: []byte{192, 0, 2, 7}},
		{Id: "w2", TimeUnixNano: t0 + 1e9, Api: "GET /long", Method: "GET", Path: "/long",
			UserAgent: "sqlmap/1.8 " + strings.Repeat("é", 60), Status: 404, ClientIp: []byte{192, 0, 2, 8}},
	}
	for _, ev := range evs {
		if err := w.Write(ev, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()

	r, _ := NewReader(bytes.NewReader(data), "capture")
	var ev event.RequestEvent
	if _, err := r.Next(&ev); err != nil {
		t.Fatal(err)
	}
	if ev.Api != "GET /scripts/..%C0%AF../winnt/system32/cmd.exe" || ev.ApiKeyId != "k%FF" || ev.UserAgent != "sqlmap/1.8 caf%E9" ||
		ev.Query[0].Name != "%FF%FE" || !utf8.ValidString(ev.Referer) {
		t.Errorf("read back %v, want its invalid bytes written as %%XX", &ev)
	}

	r, _ = NewReader(bytes.NewReader(data), "capture")
	res, err := Backtest(r, BacktestConfig{Detectors: detectors.DefaultConfig(), Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, a := range res.Anomalies {
		if _, err := protojson.Marshal(a); err != nil {
			t.Errorf("anomaly %s of %s on %q: %v", a.Id, a.Detector, a.Api, err)
		}
		found[a.Api+" "+a.GetPrincipal().GetValue()] = true
	}
	for _, want := range []string{"GET /scripts/..%C0%AF../winnt/system32/cmd.exe k%FF", "GET /long 192.0.2.8"} {
		if !found[want] {
			t.Errorf("no anomaly on %q; got %v", want, found)
		}
	}
}
