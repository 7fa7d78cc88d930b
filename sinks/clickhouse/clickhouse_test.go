package clickhouse_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

// server is one ClickHouse for the package's tests; each test has its own
// database.
var (
	serverOnce sync.Once
	server     *testutil.ClickHouse
	dbSeq      int
	dbMu       sync.Mutex
)

func TestMain(m *testing.M) {
	code := m.Run()
	if server != nil {
		server.Stop()
	}
	os.Exit(code)
}

// sharedServer starts the package's server on first use. It is stopped by
// TestMain, not by the test that happened to start it.
func sharedServer(t *testing.T) *testutil.ClickHouse {
	t.Helper()
	serverOnce.Do(func() { server = testutil.StartClickHouse(&keepAlive{T: t}) })
	if server == nil {
		t.Fatal("ClickHouse did not start (see the first test's log)")
	}
	return server
}

// keepAlive lets the server outlive the test that started it: its Cleanup
// and TempDir are the process's, not the test's.
type keepAlive struct{ *testing.T }

func (k *keepAlive) Cleanup(func()) {}
func (k *keepAlive) TempDir() string {
	dir, err := os.MkdirTemp("", "apiguard-clickhouse-")
	if err != nil {
		k.Fatal(err)
	}
	return dir
}

func config(t *testing.T) clickhouse.Config {
	t.Helper()
	srv := sharedServer(t)
	dbMu.Lock()
	dbSeq++
	name := fmt.Sprintf("apiguard_test_%d_%d", os.Getpid(), dbSeq)
	dbMu.Unlock()
	cfg := clickhouse.DefaultConfig()
	cfg.Addr = []string{srv.Addr}
	cfg.Database = name
	return cfg
}

func open(t *testing.T, cfg clickhouse.Config) *clickhouse.Client {
	t.Helper()
	c, err := clickhouse.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func migrated(t *testing.T) *clickhouse.Client {
	t.Helper()
	c := open(t, config(t))
	if _, err := c.Migrate(context.Background(), 30); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return c
}

func TestMigrateIsIdempotentAndGatedByVersion(t *testing.T) {
	c := open(t, config(t))
	ctx := context.Background()
	if err := c.CheckSchema(ctx); err == nil || !strings.Contains(err.Error(), "apiguard migrate") {
		t.Fatalf("CheckSchema before migrate = %v, want an error that says to run apiguard migrate", err)
	}
	first, err := c.Migrate(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != len(clickhouse.Migrations) {
		t.Fatalf("%d steps, want %d", len(first), len(clickhouse.Migrations))
	}
	for i, st := range first {
		m := clickhouse.Migrations[i]
		want := clickhouse.StepApplied
		if !c.Version().AtLeast(m.MinMajor, m.MinMinor) {
			want = clickhouse.StepSkipped
		}
		if st.Status != want {
			t.Errorf("first run: migration %d (%s) %s, want %s (server %s)", st.Version, st.Name, st.Status, want, c.Version())
		}
		if st.Status == clickhouse.StepSkipped && !strings.Contains(st.Why, c.Version().String()) {
			t.Errorf("skip of %d does not name the server version: %q", st.Version, st.Why)
		}
	}
	second, err := c.Migrate(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range second {
		if first[i].Status == clickhouse.StepApplied && st.Status != clickhouse.StepPresent {
			t.Errorf("second run: migration %d %s, want present", st.Version, st.Status)
		}
		if first[i].Status == clickhouse.StepSkipped && st.Status != clickhouse.StepSkipped {
			t.Errorf("second run: migration %d %s, want skipped again", st.Version, st.Status)
		}
	}
	if err := c.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema after migrate: %v", err)
	}
	// A run interrupted after an ADD COLUMN but before recording it:
	// the next run records it instead of failing on the column.
	last := clickhouse.Migrations[len(clickhouse.Migrations)-1]
	if err := c.Conn().Exec(ctx, fmt.Sprintf("ALTER TABLE %s.schema_migrations DELETE WHERE version = %d", c.Database(), last.Version)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		var n uint64
		row := c.Conn().QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s.schema_migrations WHERE version = %d", c.Database(), last.Version))
		return row.Scan(&n) == nil && n == 0
	}, "migration %d still recorded", last.Version)
	third, err := c.Migrate(ctx, 30)
	if err != nil {
		t.Fatalf("migrate after an interrupted run: %v", err)
	}
	if st := third[len(third)-1]; st.Status != clickhouse.StepApplied {
		t.Errorf("interrupted migration %d: %s, want applied again", st.Version, st.Status)
	}
}

func fullEvent(i int, t0 time.Time) *event.RequestEvent {
	ts := t0.Add(time.Duration(i) * time.Millisecond)
	return &event.RequestEvent{
		Schema:               event.SchemaVersion,
		Id:                   event.NewID(ts),
		TimeUnixNano:         ts.UnixNano(),
		DurationNanos:        int64(1500+i) * 1000,
		Proxy:                "proxy-a",
		Api:                  "GET /orders/{id}",
		Method:               "GET",
		Host:                 "shop.example",
		Path:                 fmt.Sprintf("/orders/%d", i),
		Query:                []*event.QueryParam{{Name: "expand"}, {Name: "page"}},
		Status:               []uint32{200, 404, 503}[i%3],
		RequestBytes:         int64(10 + i),
		ResponseBytes:        int64(2000 + i),
		UpstreamLatencyNanos: 900_000,
		ClientIp:             event.ClientIPBytes(netip.MustParseAddr("203.0.113.7")),
		ForwardedFor:         []string{"198.51.100.1"},
		UserAgent:            "curl/8.5",
		TlsFingerprint:       "t13d1516h2_8daaf6152771_02713d6af862",
		TlsJa3:               "98487aa16281980e7d1120d399efb6a4",
		HeaderFingerprint:    "hdr-1",
		ApiKeyId:             "key-1",
		TokenId:              "jti-1",
		TokenHash:            "abcd",
		Subject:              "alice",
		Session:              "sess-1",
		Origin:               "https://shop.example",
		Referer:              "https://shop.example/cart",
		Decision:             event.Decision_DECISION_BLOCK,
		Check:                "enforcement",
		Reason:               "block ip 203.0.113.7",
		Auth:                 event.AuthOutcome_AUTH_REVOKED,
		Partition:            3,
	}
}

func encode(t testing.TB, msgs ...event.Message) [][]byte {
	t.Helper()
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		b, err := event.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

func count(t *testing.T, c *clickhouse.Client, query string) uint64 {
	t.Helper()
	var n uint64
	if err := c.Conn().QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestEventRoundTrip(t *testing.T) {
	c := migrated(t)
	w := clickhouse.NewWriter(c)
	ev := fullEvent(0, time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC))
	if rej, err := w.Events().Store(context.Background(), encode(t, ev), false); err != nil || rej != nil {
		t.Fatalf("Store = %v, %v", rej, err)
	}
	var (
		tm                                                time.Time
		ns, reqB, respB                                   int64
		id, proxy, api, method, host, path, ip, ua, tlsfp string
		ja3                                               string
		hfp, key, jti, th, sub, sess, origin, ref, pk, pv string
		decision, check, reason, auth                     string
		ipNum                                             string
		qnames, fwd                                       []string
		status, part                                      uint16
		dur, up                                           uint32
	)
	row := c.Conn().QueryRow(context.Background(), `SELECT time, time_unix_nano, event_id, proxy, api, method, host, path,
		query_names, status, request_bytes, response_bytes, duration_us, upstream_us, client_ip, client_ip_num,
		forwarded_for, user_agent, tls_fingerprint, header_fingerprint, api_key_id, token_id, token_hash, subject,
		session, origin, referer, principal_kind, principal, toString(decision), check_name, reason, toString(auth),
		stream_partition, tls_ja3 FROM `+c.Database()+`.events`)
	err := row.Scan(&tm, &ns, &id, &proxy, &api, &method, &host, &path, &qnames, &status, &reqB, &respB, &dur, &up,
		&ip, &ipNum, &fwd, &ua, &tlsfp, &hfp, &key, &jti, &th, &sub, &sess, &origin, &ref, &pk, &pv, &decision,
		&check, &reason, &auth, &part, &ja3)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(tm.UTC().Format(time.RFC3339), ns, id, proxy, api, method, host, path, qnames, status, reqB, respB,
		dur, up, ip, []byte(ipNum), fwd, ua, tlsfp, hfp, key, jti, th, sub, sess, origin, ref, pk, pv, decision, check,
		reason, auth, part, ja3)
	mapped := netip.MustParseAddr("203.0.113.7").As16()
	want := fmt.Sprint("2026-11-23T10:00:00Z", ev.TimeUnixNano, ev.Id, "proxy-a", "GET /orders/{id}", "GET",
		"shop.example", "/orders/0", []string{"expand", "page"}, uint16(200), int64(10), int64(2000), uint32(1500),
		uint32(900), "203.0.113.7", mapped[:], []string{"198.51.100.1"}, "curl/8.5", ev.TlsFingerprint, "hdr-1",
		"key-1", "jti-1", "abcd", "alice", "sess-1", "https://shop.example", "https://shop.example/cart",
		"key", "key-1", "block", "enforcement", "block ip 203.0.113.7", "revoked", uint16(3), ev.TlsJa3)
	if got != want {
		t.Errorf("stored row\n got %s\nwant %s", got, want)
	}
}

func TestRedeliveredBatchIsStoredOnce(t *testing.T) {
	c := migrated(t)
	w := clickhouse.NewWriter(c)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 23, 59, 59, 0, time.UTC) // the batch spans two days
	var evs []event.Message
	for i := range 3000 {
		evs = append(evs, fullEvent(i, t0))
	}
	recs := encode(t, evs...)
	if _, err := w.Events().Store(ctx, recs[:2000], false); err != nil {
		t.Fatal(err)
	}
	// The whole batch again, as after a lost ack: 2000 are stored already.
	if _, err := w.Events().Store(ctx, recs, true); err != nil {
		t.Fatal(err)
	}
	if got := w.Stats().Duplicates.Load(); got != 2000 {
		t.Errorf("duplicates = %d, want 2000", got)
	}
	db := c.Database()
	if n := count(t, c, "SELECT count() FROM "+db+".events"); n != 3000 {
		t.Errorf("events rows = %d, want 3000", n)
	}
	if n := count(t, c, "SELECT countMerge(requests) FROM "+db+".api_minute"); n != 3000 {
		t.Errorf("rollup requests = %d, want 3000", n)
	}
	if n := count(t, c, "SELECT toUInt64(sumMerge(server_errors)) FROM "+db+".api_minute"); n != 1000 {
		t.Errorf("rollup server errors = %d, want 1000 (every third event is a 503)", n)
	}
}

func TestUndecodableRecordsAreRejectedAndTheRestStored(t *testing.T) {
	c := migrated(t)
	w := clickhouse.NewWriter(c)
	t0 := time.Now().UTC()
	recs := encode(t, fullEvent(0, t0), fullEvent(1, t0))
	recs = append(recs[:1], append([][]byte{[]byte("\xffnot an event")}, recs[1:]...)...)
	rej, err := w.Events().Store(context.Background(), recs, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rej) != 1 || rej[1] == nil || !strings.Contains(rej[1].Error(), "events") {
		t.Fatalf("rejected = %v, want index 1 with a reason naming the table", rej)
	}
	if n := count(t, c, "SELECT count() FROM "+c.Database()+".events"); n != 2 {
		t.Errorf("rows = %d, want 2", n)
	}
}

func TestAnomaliesAndActions(t *testing.T) {
	c := migrated(t)
	w := clickhouse.NewWriter(c)
	ctx := context.Background()
	ts := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	a := &event.Anomaly{Schema: event.SchemaVersion, Id: event.HashID(ts, "a"), TimeUnixNano: ts.UnixNano(),
		Detector: "rate", Api: "GET /search", Principal: &event.Principal{Kind: "ip", Value: "203.0.113.9"},
		Score: 0.97, Severity: event.Severity_SEVERITY_HIGH, EventIds: []string{"e1", "e2"}, Summary: "40x normal",
		Deviations: []*event.Deviation{{Feature: "rate_1m", Observed: 400, Expected: 10, Deviation: 39}}}
	act := &event.Action{Schema: event.SchemaVersion, Id: event.HashID(ts, "b"), TimeUnixNano: ts.UnixNano(),
		Kind: event.ActionKind_ACTION_BLOCK, Target: &event.Principal{Kind: "ip", Value: "203.0.113.9"},
		TtlSeconds: 600, Reason: "rate", AnomalyId: a.Id, Actor: "policy:default", DryRun: true, TriggerUnixNano: ts.UnixNano() - 5e6}
	for range 2 { // the second time as a redelivery
		if _, err := w.Anomalies().Store(ctx, encode(t, a), true); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Actions().Store(ctx, encode(t, act), true); err != nil {
			t.Fatal(err)
		}
	}
	var (
		det, sev, summary, feat string
		score, obs, exp         float64
		ids                     []string
	)
	err := c.Conn().QueryRow(ctx, "SELECT detector, toString(severity), summary, features[1], score, observed[1], expected[1], event_ids FROM "+
		c.Database()+".anomalies").Scan(&det, &sev, &summary, &feat, &score, &obs, &exp, &ids)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(det, sev, summary, feat, score, obs, exp, ids); got != fmt.Sprint("rate", "high", "40x normal", "rate_1m", 0.97, 400.0, 10.0, []string{"e1", "e2"}) {
		t.Errorf("anomaly row: %s", got)
	}
	var kind, target, actor string
	var ttl int64
	var dry uint8
	err = c.Conn().QueryRow(ctx, "SELECT toString(kind), target, actor, ttl_seconds, dry_run FROM "+c.Database()+".actions").
		Scan(&kind, &target, &actor, &ttl, &dry)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(kind, target, actor, ttl, dry); got != "block203.0.113.9policy:default600 1" {
		t.Errorf("action row: %s", got)
	}
	for _, table := range []string{"anomalies", "actions"} {
		if n := count(t, c, "SELECT count() FROM "+c.Database()+"."+table); n != 1 {
			t.Errorf("%s rows = %d, want 1", table, n)
		}
	}
}

func TestBaselines(t *testing.T) {
	c := migrated(t)
	w := clickhouse.NewWriter(c)
	ts := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	bs := []clickhouse.Baseline{
		{Time: ts, Detector: "rate", API: "GET /search", Feature: "requests_per_window", Centre: 4, Spread: 1.5, Samples: 120, Principals: 40},
		{Time: ts, Detector: "rate", API: "POST /login", Feature: "requests_per_window", Centre: 1, Spread: 0.5, Samples: 30, Principals: 12, Partition: 2},
	}
	if err := w.WriteBaselines(context.Background(), bs); err != nil {
		t.Fatal(err)
	}
	if n := count(t, c, "SELECT toUInt64(sum(samples)) FROM "+c.Database()+".baselines"); n != 150 {
		t.Errorf("sum(samples) = %d, want 150", n)
	}
}

func TestStoreFailsWhileServerIsDownAndWorksAfter(t *testing.T) {
	srv := testutil.StartClickHouse(t) // its own server: this test stops it
	cfg := clickhouse.DefaultConfig()
	cfg.Addr = []string{srv.Addr}
	cfg.DialTimeout = time.Second
	c := open(t, cfg)
	ctx := context.Background()
	if _, err := c.Migrate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	w := clickhouse.NewWriter(c)
	recs := encode(t, fullEvent(0, time.Now()), fullEvent(1, time.Now()))
	srv.Stop()
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := w.Events().Store(tctx, recs, false)
	cancel()
	if err == nil {
		t.Fatal("Store with the server down succeeded")
	}
	if !strings.Contains(err.Error(), "events") {
		t.Errorf("error %q does not name the table", err)
	}
	if w.Stats().Errors.Load() == 0 {
		t.Error("the failure was not counted")
	}
	srv.Start()
	var last error
	testutil.Eventually(t, 20*time.Second, func() bool {
		_, last = w.Events().Store(ctx, recs, true)
		return last == nil
	}, "store after restart: %v", func() any { return last })
	if n := count(t, c, "SELECT count() FROM "+c.Database()+".events"); n != 2 {
		t.Errorf("rows = %d, want 2", n)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*clickhouse.Config)
		want string
	}{
		{"defaults", func(*clickhouse.Config) {}, ""},
		{"addr", func(c *clickhouse.Config) { c.Addr = []string{"nohost"} }, "clickhouse.addr[0]"},
		{"database", func(c *clickhouse.Config) { c.Database = "x; DROP TABLE y" }, "clickhouse.database"},
		{"batch", func(c *clickhouse.Config) { c.BatchSize = 0 }, "clickhouse.batch_size"},
		{"flush", func(c *clickhouse.Config) { c.FlushInterval = 0 }, "clickhouse.flush_interval"},
		{"retention", func(c *clickhouse.Config) { c.RetentionDays = -1 }, "clickhouse.retention_days"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clickhouse.DefaultConfig()
			tc.mod(&cfg)
			err := cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestConcurrentStores(t *testing.T) {
	c := migrated(t)
	w := clickhouse.NewWriter(c)
	t0 := time.Now().UTC()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		var evs []event.Message
		for i := range 500 {
			evs = append(evs, fullEvent(g*1000+i, t0))
		}
		recs := encode(t, evs...)
		wg.Go(func() {
			for i := 0; i < len(recs); i += 100 {
				if _, err := w.Events().Store(context.Background(), recs[i:i+100], false); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := count(t, c, "SELECT uniqExact(event_id) FROM "+c.Database()+".events"); n != 2000 {
		t.Errorf("distinct events = %d, want 2000", n)
	}
	if n := count(t, c, "SELECT count() FROM "+c.Database()+".events"); n != 2000 {
		t.Errorf("rows = %d, want 2000", n)
	}
}

// An enum value from a newer schema must not stall storage: it is stored
// as 'unspecified'.
func TestUnknownEnumValueIsStored(t *testing.T) {
	c := migrated(t)
	w := clickhouse.NewWriter(c)
	ev := fullEvent(0, time.Now().UTC())
	ev.Decision = event.Decision(42)
	if _, err := w.Events().Store(context.Background(), encode(t, ev), false); err != nil {
		t.Fatalf("an unknown decision stalls the insert: %v", err)
	}
	var d string
	if err := c.Conn().QueryRow(context.Background(), "SELECT toString(decision) FROM "+c.Database()+".events").Scan(&d); err != nil || d != "unspecified" {
		t.Errorf("decision stored as %q (%v), want unspecified", d, err)
	}
}
