// Command chwriter measures apiguard's ClickHouse writer: it generates
// request events, writes the same rows as a TSV file for clickhouse-client,
// and times the writer inserting them (decoding included) in batches.
// deploy/bench/clickhouse.sh runs it next to clickhouse-client.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

// columns are the TSV's columns, in the order the file has them.
const columns = "time, time_unix_nano, event_id, proxy, api, method, host, path, query_names, status, request_bytes, " +
	"response_bytes, duration_us, upstream_us, client_ip, forwarded_for, user_agent, api_key_id, principal_kind, " +
	"principal, decision, check_name, auth, stream_partition"

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "ClickHouse native address")
	db := flag.String("db", "bench_writer", "database for the writer's rows")
	rows := flag.Int("rows", 500000, "events to generate")
	batch := flag.Int("batch", clickhouse.DefaultConfig().BatchSize, "rows per insert (clickhouse.batch_size)")
	tsv := flag.String("tsv", "", "write the rows here as TSV and exit")
	migrateOnly := flag.Bool("migrate-only", false, "create the schema in -db and exit")
	parallel := flag.Int("parallel", clickhouse.DefaultConfig().Parallel, "concurrent inserts (the loader's store.parallel)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the inserts here")
	flag.Parse()

	var recs [][]byte
	if !*migrateOnly {
		recs = generate(*rows)
	}
	if *tsv != "" {
		if err := writeTSV(*tsv, recs); err != nil {
			log.Fatal(err)
		}
		fmt.Println(columns)
		return
	}
	ctx := context.Background()
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database = []string{*addr}, *db
	c, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Migrate(ctx, 0); err != nil {
		log.Fatal(err)
	}
	if *migrateOnly {
		return
	}
	w := clickhouse.NewWriter(c)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	next := make(chan [][]byte)
	var wg sync.WaitGroup
	for range *parallel {
		wg.Go(func() {
			for b := range next {
				if _, err := w.Events().Store(ctx, b, false); err != nil {
					log.Fatal(err)
				}
			}
		})
	}
	for i := 0; i < len(recs); i += *batch {
		next <- recs[i:min(i+*batch, len(recs))]
	}
	close(next)
	wg.Wait()
	took := time.Since(start)
	fmt.Printf("writer: %d rows in %.2fs = %.0f rows/s\n", len(recs), took.Seconds(), float64(len(recs))/took.Seconds())
}

var apis = []string{"GET /search", "GET /products/{id}", "POST /orders", "GET /users/{id}/orders"}

// generate returns n encoded events with realistic fields, deterministic.
func generate(n int) [][]byte {
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	out := make([][]byte, n)
	for i := range n {
		ts := t0.Add(time.Duration(i) * 3 * time.Millisecond)
		api := apis[i%len(apis)]
		ev := &event.RequestEvent{
			Schema: event.SchemaVersion, Id: event.HashID(ts, fmt.Sprint(i)), TimeUnixNano: ts.UnixNano(),
			DurationNanos: int64(800_000 + i%5000*100), Proxy: "proxy-1", Api: api, Method: strings.Fields(api)[0],
			Host: "shop.example", Path: fmt.Sprintf("/products/%d", i%10000),
			Query:  []*event.QueryParam{{Name: "q"}, {Name: "page"}},
			Status: []uint32{200, 200, 200, 201, 404}[i%5], RequestBytes: int64(i % 700), ResponseBytes: int64(1000 + i%9000),
			UpstreamLatencyNanos: int64(600_000 + i%3000*100),
			ClientIp:             event.ClientIPBytes(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})),
			ForwardedFor:         []string{"198.51.100.7"},
			UserAgent:            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
			ApiKeyId:             fmt.Sprintf("key-%d", i%500),
			Decision:             event.Decision_DECISION_ALLOW, Auth: event.AuthOutcome_AUTH_OK, Partition: uint32(i % 4),
		}
		b, err := event.Marshal(ev)
		if err != nil {
			log.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// writeTSV writes the rows in the columns' order, escaped as ClickHouse's
// TabSeparated format wants.
func writeTSV(path string, recs [][]byte) error {
	var b strings.Builder
	for _, r := range recs {
		var ev event.RequestEvent
		if err := event.UnmarshalEvent(r, &ev); err != nil {
			return err
		}
		kind, value := event.PrincipalOf(&ev)
		names := make([]string, len(ev.Query))
		for i, q := range ev.Query {
			names[i] = q.Name
		}
		fields := []string{
			time.Unix(0, ev.TimeUnixNano).UTC().Format(time.DateTime), fmt.Sprint(ev.TimeUnixNano), ev.Id, ev.Proxy, ev.Api,
			ev.Method, ev.Host, ev.Path, array(names), fmt.Sprint(ev.Status), fmt.Sprint(ev.RequestBytes),
			fmt.Sprint(ev.ResponseBytes), fmt.Sprint(ev.DurationNanos / 1000), fmt.Sprint(ev.UpstreamLatencyNanos / 1000),
			event.ClientIPString(ev.ClientIp), array(ev.ForwardedFor), ev.UserAgent, ev.ApiKeyId, kind, value, "allow",
			ev.Check, "ok", fmt.Sprint(ev.Partition),
		}
		for i, f := range fields {
			if i > 0 {
				b.WriteByte('\t')
			}
			if strings.HasPrefix(f, "[") {
				b.WriteString(f)
			} else {
				b.WriteString(escape(f))
			}
		}
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`).Replace(s)
}

func array(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
	}
	return "[" + strings.Join(q, ",") + "]"
}
