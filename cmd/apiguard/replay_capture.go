package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/pipeline/topology"
	"github.com/apiguard/apiguard/replay"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

// replayCapture writes the events of a time range, from the stream (the
// capture buffer) or from ClickHouse, to a capture file, in event-time
// order. Progress goes to progress.
func replayCapture(args []string, out, progress io.Writer) error {
	c := newCommon("replay capture")
	since := c.fs.String("since", "24h", "start: a duration before now (24h) or a time (RFC 3339)")
	until := c.fs.String("until", "", "end (excluded): a duration before now or a time (RFC 3339); default: now")
	api := c.fs.String("api", "", "only this API (route template with its method: \"GET /orders/{id}\")")
	principal := c.fs.String("principal", "", "only this principal, kind:value (ip:203.0.113.7, key:k1, sub:alice, token:…); read from its partition alone, so nats.partitions must be the proxy's")
	path := c.fs.String("out", "", "capture file to write")
	late := c.fs.Duration("late", time.Hour, "with --until, stop reading the stream at events stored this long after it (a proxy's spool sends events late after an outage of NATS)")
	from := c.fs.String("from", "stream", "stream (APIGUARD_EVENTS, as far back as nats.max_age) or clickhouse (older ranges)")
	setCH := clickhouseFlag(c)
	cfg, err := c.load(args, setCH)
	if err != nil {
		return err
	}
	if *path == "" || c.fs.NArg() > 0 {
		return fmt.Errorf("%w: want --out FILE and no other arguments", errUsage)
	}
	now := time.Now()
	f := replay.CaptureFilter{API: *api, Principal: *principal}
	if f.Since, err = timeArg(*since, now); err != nil {
		return fmt.Errorf("%w: --since: %v", errUsage, err)
	}
	if *until != "" {
		if f.Until, err = timeArg(*until, now); err != nil {
			return fmt.Errorf("%w: --until: %v", errUsage, err)
		}
	}
	kind, value, ok := strings.Cut(f.Principal, ":")
	if f.Principal != "" && (!ok || kind == "" || value == "") {
		return fmt.Errorf("%w: --principal %q, want kind:value", errUsage, f.Principal)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var col replay.Collector
	began := time.Now()
	var read uint64
	switch *from {
	case "stream":
		read, err = captureStream(ctx, cfg, &f, *late, &col, progress)
	case "clickhouse":
		read, err = captureClickHouse(ctx, cfg, &f, &col, progress)
	default:
		return fmt.Errorf("%w: --from %q, want stream or clickhouse", errUsage, *from)
	}
	if err != nil {
		return err
	}
	o, err := os.Create(*path)
	if err != nil {
		return fmt.Errorf("creating capture: %w", err)
	}
	w, err := replay.NewWriter(o)
	if err != nil {
		o.Close()
		return err
	}
	n, err := col.WriteTo(w)
	if err != nil {
		o.Close()
		return err
	}
	if err := o.Close(); err != nil {
		return fmt.Errorf("writing capture %s: %w", *path, err)
	}
	took := time.Since(began)
	fmt.Fprintf(out, "wrote %s: %d events of %d read from %s in %s (%.0f events/s)\n", *path, n, read, *from,
		took.Round(time.Millisecond), float64(read)/max(took.Seconds(), 1e-9))
	return nil
}

// captureStream reads the stream from f.Since to its end, or with
// f.Until to the first event stored late after it. A --principal narrows
// the read to its partition's subject.
func captureStream(ctx context.Context, cfg Config, f *replay.CaptureFilter, late time.Duration, col *replay.Collector,
	progress io.Writer) (uint64, error) {
	url := cfg.NATS.URL
	if url == "" {
		url = secret.URL("nats://" + cfg.NATS.Listen) // the embedded server of 'apiguard up'
	}
	nc, js, err := connectOperator(ctx, url, cfg.NATS.Auth, "apiguard-capture", newLogger(cfg.Log, io.Discard))
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	subject := event.SubjectEvents
	if kind, value, ok := strings.Cut(f.Principal, ":"); ok {
		subject = fmt.Sprintf(event.SubjectEventsT, event.Partition(kind, value, cfg.NATS.Partitions))
	}
	var read, bad uint64
	var last time.Time
	err = topology.ReadEvents(ctx, js, subject, f.Since, func(seq uint64, stored time.Time, data []byte) error {
		if !f.Until.IsZero() && stored.After(f.Until.Add(late)) {
			// An event is stored when the proxy publishes it: at once, or
			// when its spool drains after an outage of NATS. Past --late
			// after the range, none of it is left to come.
			return topology.ErrStop
		}
		read++
		ev := new(event.RequestEvent)
		if err := event.UnmarshalEvent(data, ev); err != nil {
			bad++ // counted and reported below; the pipeline terminates such messages too
			return nil
		}
		if f.Keep(ev) {
			return col.Add(ev, 0, int32(col.Len()))
		}
		return nil
	}, func(n, total uint64) {
		if time.Since(last) > time.Second || n == total {
			last = time.Now()
			fmt.Fprintf(progress, "\rcapture: %d/%d messages read, %d events kept", n, total, col.Len())
			if n == total {
				fmt.Fprintln(progress)
			}
		}
	})
	if bad > 0 {
		fmt.Fprintf(progress, "capture: %d messages that are not events were skipped\n", bad)
	}
	return read, err
}

// captureClickHouse reads the events table.
func captureClickHouse(ctx context.Context, cfg Config, f *replay.CaptureFilter, col *replay.Collector, progress io.Writer) (uint64, error) {
	ch, err := clickhouse.Open(ctx, cfg.ClickHouse.Config)
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	q := clickhouse.EventQuery{Since: f.Since, Until: f.Until, API: f.API}
	q.PrincipalKind, q.Principal, _ = strings.Cut(f.Principal, ":")
	var read uint64
	last := time.Now()
	err = ch.ReadEvents(ctx, q, func(ev *event.RequestEvent) error {
		read++
		if time.Since(last) > time.Second {
			last = time.Now()
			fmt.Fprintf(progress, "\rcapture: %d events read", read)
		}
		return col.Add(ev, 0, int32(col.Len()))
	})
	fmt.Fprintf(progress, "\rcapture: %d events read\n", read)
	return read, err
}

// timeArg reads a time: RFC 3339, or a duration before now.
func timeArg(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want a duration (24h) or an RFC 3339 time", s)
	}
	return t, nil
}
