package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// anomalyFilter selects the anomalies 'apiguard anomalies' prints.
type anomalyFilter struct {
	kind, value string // principal; kind empty matches any kind
	api         string
}

// keep reports whether a passes the filter. A principal matches the
// anomaly's principal or one of its members (a shared credential's).
func (f anomalyFilter) keep(a *event.Anomaly) bool {
	if f.api != "" && a.Api != f.api {
		return false
	}
	if f.value == "" {
		return true
	}
	match := func(p *event.Principal) bool {
		return p.GetValue() == f.value && (f.kind == "" || p.GetKind() == f.kind)
	}
	if match(a.Principal) {
		return true
	}
	for _, m := range a.Members {
		if match(m) {
			return true
		}
	}
	return false
}

// principalKinds are the kinds an anomaly's principal may have, so that
// --principal ip:… is a kind and a value, and an IPv6 address a value.
var principalKinds = []string{event.KindIP, event.KindCIDR, event.KindKey, event.KindToken, event.KindSub, event.KindFP, event.KindAPI}

// cmdAnomalies prints the latest anomalies stored in the anomaly stream
// since --since, for an operator at a terminal (Grafana shows the same
// and more).
func cmdAnomalies(ctx context.Context, args []string, out io.Writer) error {
	c := newCommon("anomalies")
	since := c.fs.String("since", "1h", "from: a duration before now (1h) or a time (RFC 3339); anomalies stored since then")
	principal := c.fs.String("principal", "", "only this principal: kind:value (key:k1, ip:203.0.113.7, sub:alice) or a value of any kind")
	api := c.fs.String("api", "", "only this API (the route template with its method: \"GET /orders/{id}\")")
	detector := c.fs.String("detector", "", "only this detector's anomalies (rate, probing, …)")
	limit := c.fs.Int("limit", 50, "print the latest N that match (0: all)")
	output := outputFlags(c.fs)
	cfg, err := c.load(args, nil)
	if err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, c.fs.Arg(0))
	}
	asJSON, err := output.isJSON()
	if err != nil {
		return err
	}
	if *limit < 0 {
		return fmt.Errorf("%w: --limit %d, want 0 (all) or more", errUsage, *limit)
	}
	from, err := timeArg(*since, time.Now())
	if err != nil {
		return fmt.Errorf("%w: --since: %v", errUsage, err)
	}
	f := anomalyFilter{api: *api, value: *principal}
	if k, v, ok := strings.Cut(*principal, ":"); ok && slices.Contains(principalKinds, k) {
		f.kind, f.value = k, v
	}
	subject := event.SubjectAnomalies
	if *detector != "" {
		subject = fmt.Sprintf(event.SubjectAnomaliesT, *detector)
	}
	url := cfg.NATS.URL
	if url == "" {
		url = secret.URL("nats://" + cfg.NATS.Listen) // the embedded server of 'apiguard up'
	}
	nc, js, err := connectOperator(ctx, url, cfg.NATS.Auth, "apiguard-anomalies", newLogger(cfg.Log, io.Discard))
	if err != nil {
		return err
	}
	defer nc.Close()
	var kept []*event.Anomaly
	var matched, bad int
	err = topology.ReadStream(ctx, js, event.StreamAnomalies, subject, from, func(_ uint64, _ time.Time, data []byte) error {
		a := new(event.Anomaly)
		if err := event.UnmarshalAnomaly(data, a); err != nil {
			bad++
			return nil
		}
		if !f.keep(a) {
			return nil
		}
		matched++
		kept = append(kept, a)
		if *limit > 0 && len(kept) >= 2*(*limit) {
			kept = append(kept[:0:0], kept[len(kept)-*limit:]...)
		}
		return nil
	}, nil)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("NATS at %s has no %s stream: no pipeline has run against it ('apiguard up' or 'apiguard pipeline' declares it)", url, event.StreamAnomalies)
	}
	if err != nil {
		return err
	}
	if bad > 0 {
		fmt.Fprintf(os.Stderr, "warning: %d messages of %s are not anomalies and were skipped\n", bad, event.StreamAnomalies)
	}
	if *limit > 0 && len(kept) > *limit {
		kept = kept[len(kept)-*limit:]
	}
	if asJSON {
		list := make([]json.RawMessage, 0, len(kept))
		for _, a := range kept {
			b, err := protojson.Marshal(a)
			if err != nil {
				return fmt.Errorf("encoding anomaly %s: %w", a.Id, err)
			}
			list = append(list, b)
		}
		return writeJSON(out, list)
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tDETECTOR\tSEVERITY\tSCORE\tAPI\tPRINCIPAL\tSUMMARY")
	for _, a := range kept {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t%s:%s\t%s\n", time.Unix(0, a.TimeUnixNano).Local().Format(time.DateTime),
			a.Detector, a.Severity.Label(), a.Score, a.Api, a.Principal.GetKind(), a.Principal.GetValue(), oneLine(a.Summary, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d of %d anomalies since %s\n", len(kept), matched, from.Local().Format(time.DateTime))
	return nil
}
