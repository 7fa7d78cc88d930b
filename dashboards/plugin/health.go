package plugin

import (
	"context"
	"fmt"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/apiguard/apiguard/event"
)

// Health is the outcome of one part of the health check.
type Health struct {
	Part    string `json:"part"` // "nats", "streams", "clickhouse"
	OK      bool   `json:"ok"`
	Message string `json:"message"`
}

// CheckHealth checks that NATS is reachable, that the event, anomaly and
// action streams and the enforcement bucket exist, and that ClickHouse is
// reachable with apiguard's schema (its latest migration version). The
// message says each part's state in one line; JSONDetails lists them.
// Nothing secret is in either.
func (d *Datasource) CheckHealth(ctx context.Context, _ *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*d.settings.timeout())
	defer cancel()
	parts := []Health{d.natsHealth(ctx), d.streamsHealth(ctx), d.clickhouseHealth(ctx)}
	res := &backend.CheckHealthResult{Status: backend.HealthStatusOk}
	msgs := make([]string, len(parts))
	for i, p := range parts {
		msgs[i] = p.Message
		if !p.OK {
			res.Status = backend.HealthStatusError
		}
	}
	res.Message = strings.Join(msgs, "; ")
	res.JSONDetails = mustJSON(map[string]any{"parts": parts})
	return res, nil
}

func (d *Datasource) natsHealth(ctx context.Context) Health {
	h := Health{Part: "nats"}
	if !d.nc.IsConnected() {
		h.Message = fmt.Sprintf("NATS %s is not reachable (%s)", d.settings.NATSURL, d.nc.Status())
		if err := d.nc.LastError(); err != nil {
			h.Message += ": " + err.Error()
		}
		return h
	}
	if err := d.nc.FlushWithContext(ctx); err != nil {
		h.Message = fmt.Sprintf("NATS %s does not answer: %v", d.nc.ConnectedUrlRedacted(), err)
		return h
	}
	h.OK, h.Message = true, "NATS "+d.nc.ConnectedUrlRedacted()+" reachable"
	return h
}

func (d *Datasource) streamsHealth(ctx context.Context) Health {
	h := Health{Part: "streams"}
	if !d.nc.IsConnected() {
		h.Message = "streams and bucket not checked (no NATS)"
		return h
	}
	var missing []string
	for _, name := range []string{event.StreamEvents, event.StreamAnomalies, event.StreamActions} {
		if _, err := d.js.Stream(ctx, name); err != nil {
			missing = append(missing, fmt.Sprintf("stream %s: %v", name, err))
		}
	}
	if _, err := d.js.KeyValue(ctx, event.BucketEnforcement); err != nil {
		missing = append(missing, fmt.Sprintf("bucket %s: %v", event.BucketEnforcement, err))
	}
	if len(missing) > 0 {
		h.Message = "missing (start the apiguard pipeline, which creates them): " + strings.Join(missing, ", ")
		return h
	}
	h.OK, h.Message = true, "streams and enforcement bucket present"
	return h
}

func (d *Datasource) clickhouseHealth(ctx context.Context) Health {
	h := Health{Part: "clickhouse"}
	addr := d.settings.ClickHouseAddr
	if err := d.ch.Ping(ctx); err != nil {
		h.Message = fmt.Sprintf("ClickHouse %s is not reachable: %v", addr, err)
		return h
	}
	sv, err := d.ch.ServerVersion()
	if err != nil {
		h.Message = fmt.Sprintf("ClickHouse %s: asking its version: %v", addr, err)
		return h
	}
	// schema_migrations is where 'apiguard migrate' records each applied
	// migration (sinks/clickhouse).
	var version uint32
	table := d.settings.ClickHouseDatabase + ".schema_migrations"
	if err := d.ch.QueryRow(ctx, "SELECT max(version) FROM "+table).Scan(&version); err != nil {
		h.Message = fmt.Sprintf("ClickHouse %s (%d.%d) reachable, but %s cannot be read (run 'apiguard migrate'): %v",
			addr, sv.Version.Major, sv.Version.Minor, table, err)
		return h
	}
	if version == 0 {
		h.Message = fmt.Sprintf("ClickHouse %s reachable, but no migration is applied in %s (run 'apiguard migrate')", addr, d.settings.ClickHouseDatabase)
		return h
	}
	h.OK = true
	h.Message = fmt.Sprintf("ClickHouse %s %d.%d.%d reachable, schema version %d in %s",
		addr, sv.Version.Major, sv.Version.Minor, sv.Version.Patch, version, d.settings.ClickHouseDatabase)
	return h
}
