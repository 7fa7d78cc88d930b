package integration

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/replay"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

const utf8Config = `
nats:
  partitions: 2
proxy:
  routes: ["GET /items/{id}"]
  capture_query_values: true
clickhouse:
  batch_size: 10
  flush_interval: 100ms
  dial_timeout: 1s
emit:
  flush_interval: 2ms
`

// worm is the path of a Nimda-era request: "%c0%af" is an overlong "/"
// that decodes to bytes that are not UTF-8.
const worm = "/scripts/..%c0%af../winnt/system32/cmd.exe"

// TestInvalidUTF8EndToEnd sends bytes that are not UTF-8 in the path, the
// query, the headers and the user agent through a proxy process, a
// pipeline process, JetStream and ClickHouse, and backtests the captured
// events with `apiguard replay backtest --anomalies`: every string stored
// or written is valid UTF-8, the path is kept as the client sent it, other
// invalid bytes read as %XX, and the backtest does not abort.
func TestInvalidUTF8EndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	dir := t.TempDir()
	srv := testutil.JetStream(t, -1, "")
	_, js := testutil.Connect(t, srv)
	ch := testutil.StartClickHouse(t)
	cfgPath := filepath.Join(dir, "apiguard.yaml")
	if err := os.WriteFile(cfgPath, []byte(utf8Config), 0o600); err != nil {
		t.Fatal(err)
	}
	apiguard(t, "migrate", "--config", cfgPath, "--clickhouse", ch.Addr)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer upstream.Close()
	listen := freeAddr(t)
	start(t, "pipeline", "pipeline", "--config", cfgPath, "--nats", srv.ClientURL(), "--clickhouse", ch.Addr,
		"--metrics-listen", freeAddr(t))
	start(t, "proxy", "proxy", "--config", cfgPath, "--nats", srv.ClientURL(), "--listen", listen,
		"--upstream", upstream.URL, "--spool-dir", filepath.Join(dir, "spool"), "--metrics-listen", freeAddr(t))

	requests := []string{
		// A scanner (an anomaly at once) with every kind of bad byte.
		"GET " + worm + "?q=%c0%af&%ff%fe=1&C=M;O=A HTTP/1.1\r\nUser-Agent: sqlmap/1.8 caf\xe9\r\n" +
			"Referer: http://x.example/\xff\r\nAccept-Language: fr-\xe9\r\nX-API-Key: k\xff.secret\r\n",
		// A scanner whose valid user agent an anomaly's summary clips
		// inside a character.
		"GET /long HTTP/1.1\r\nUser-Agent: nikto/2.5 x" + strings.Repeat("é", 60) + "\r\nX-API-Key: long.secret\r\n",
		"GET /items/7 HTTP/1.1\r\nUser-Agent: Mozilla/5.0\r\nOrigin: http://\xfe.example\r\nX-API-Key: plain.secret\r\n",
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return sendRaw(listen, "GET /ready HTTP/1.1\r\n") == 200 },
		"proxy never answered")
	for i, req := range requests {
		// The scanners are refused by the bots check; each request is an
		// event whatever its answer.
		if status := sendRaw(listen, req); status == 0 {
			t.Fatalf("request %d: no answer", i)
		}
	}

	cfg := clickhouse.DefaultConfig()
	cfg.Addr = []string{ch.Addr}
	cfg.DialTimeout = time.Second
	// rows runs q and returns its rows, each column as text; nil on error.
	rows := func(q string) [][]string {
		c, err := clickhouse.Open(context.Background(), cfg)
		if err != nil {
			return nil
		}
		defer c.Close()
		rs, err := c.Conn().Query(context.Background(), q)
		if err != nil {
			t.Logf("%s: %v", q, err)
			return nil
		}
		defer rs.Close()
		var out [][]string
		for rs.Next() {
			var a, b, c2, d string
			var e []string
			if err := rs.Scan(&a, &b, &c2, &d, &e); err != nil {
				t.Logf("%s: %v", q, err)
				return nil
			}
			out = append(out, append([]string{a, b, c2, d}, e...))
		}
		return out
	}
	const eventsQ = "SELECT path, api, user_agent, concat(referer, ' ', origin, ' ', api_key_id), query_names FROM apiguard.events " +
		"WHERE path != '/ready' ORDER BY time_unix_nano"
	const anomaliesQ = "SELECT api, principal, summary, detector, features FROM apiguard.anomalies"
	testutil.Eventually(t, 30*time.Second, func() bool { return len(rows(eventsQ)) == len(requests) },
		"events stored: %v, want %d", func() any { return rows(eventsQ) }, len(requests))
	testutil.Eventually(t, 30*time.Second, func() bool { return len(rows(anomaliesQ)) >= 2 },
		"anomalies stored: %v, want the two scanners'", func() any { return rows(anomaliesQ) })

	for _, q := range []string{eventsQ, anomaliesQ} {
		for _, row := range rows(q) {
			for _, s := range row {
				if !utf8.ValidString(s) {
					t.Errorf("%s: %q is not valid UTF-8 (row %q)", q, s, row)
				}
			}
		}
	}
	wantEvent := []string{worm, "GET /scripts/..%C0%AF../winnt/system32/cmd.exe", "sqlmap/1.8 caf%E9",
		"http://x.example/%FF  k%FF", "q", "%FF%FE", "C"}
	if evs := rows(eventsQ); !slices.ContainsFunc(evs, func(r []string) bool { return slices.Equal(r, wantEvent) }) {
		t.Errorf("stored events %q; want one of them %q", evs, wantEvent)
	}
	if !slices.ContainsFunc(rows(anomaliesQ), func(r []string) bool {
		return r[0] == "GET /scripts/..%C0%AF../winnt/system32/cmd.exe" && r[1] == "k%FF"
	}) {
		t.Errorf("stored anomalies %q; want one on the worm's API by k%%FF", rows(anomaliesQ))
	}

	// The events as captured from the stream, then one as a proxy before
	// the fix wrote it, backtested with the anomalies written as JSON.
	capture := filepath.Join(dir, "capture")
	evs := streamEvents(t, js)
	last := evs[len(evs)-1]
	evs = append(evs, &event.RequestEvent{Schema: event.SchemaVersion, Id: "old-1", TimeUnixNano: last.TimeUnixNano + 1e9,
		Api: "GET /scripts/..\xc0\xaf../winnt/system32/cmd.exe", Method: "GET", Path: worm, Status: 404,
		UserAgent: "nuclei caf\xe9", ClientIp: []byte{192, 0, 2, 9}})
	writeCapture(t, capture, evs)
	dump := filepath.Join(dir, "anomalies.jsonl")
	out, err := tryApiguard("replay", "backtest", capture, "--config", cfgPath, "--openapi", "none", "--anomalies", dump)
	if err != nil {
		t.Fatalf("replay backtest: %v\n%s", err, out)
	}
	data, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	var apis []string
	for line := range strings.Lines(string(data)) {
		var a struct{ API string }
		if !utf8.ValidString(line) || json.Unmarshal([]byte(line), &a) != nil {
			t.Errorf("anomaly line %q is not valid UTF-8 JSON", line)
		}
		apis = append(apis, a.API)
	}
	if len(apis) < 3 || !slices.Contains(apis, "GET /scripts/..%C0%AF../winnt/system32/cmd.exe") {
		t.Errorf("backtest anomalies on %q; want the three scanners', the worm's API escaped", apis)
	}
}

// sendRaw sends one request head (without Host and the final blank line)
// on a fresh connection and returns the status, 0 on error.
func sendRaw(addr, head string) int {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, head+"Host: api.example\r\nConnection: close\r\n\r\n"); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// streamEvents reads every request event of the events stream, in event
// time order.
func streamEvents(t *testing.T, js jetstream.JetStream) []*event.RequestEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, event.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := int(info.State.Msgs)
	cons, err := js.OrderedConsumer(ctx, event.StreamEvents, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*event.RequestEvent
	for len(out) < n {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("reading event %d of %d from the stream: %v", len(out)+1, n, err)
		}
		ev := new(event.RequestEvent)
		if err := event.UnmarshalEvent(msg.Data(), ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	slices.SortFunc(out, func(a, b *event.RequestEvent) int { return cmp.Compare(a.TimeUnixNano, b.TimeUnixNano) })
	return out
}

func writeCapture(t *testing.T, path string, evs []*event.RequestEvent) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := replay.NewWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if err := w.Write(ev, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
