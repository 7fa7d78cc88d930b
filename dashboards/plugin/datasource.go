// Package plugin provides the backend of apiguard's Grafana data source
// (apiguard-datasource): the typed ClickHouse queries (Queries), the
// active enforcement entries, the live streams of anomalies and actions,
// the health check, and the actions analysts take, which go through the
// responder like every other action. The app plugin (apiguard-app) has no
// backend of its own: its pages call this data source's resources.
package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/datasource"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/live"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// PluginID is the data source's plugin id, as plugin.json names it.
const PluginID = "apiguard-datasource"

// Datasource is one configured apiguard data source: a NATS connection
// (streams, the enforcement bucket, the audit stream) and a ClickHouse
// connection pool (queries). Grafana makes one per data source and
// settings version through the SDK's instance manager, and disposes of it
// when the settings change. It is safe for concurrent use.
type Datasource struct {
	settings Settings
	log      *slog.Logger
	nc       *nats.Conn
	js       jetstream.JetStream
	ch       driver.Conn
	queries  *Queries

	mu        sync.Mutex
	resp      *responder.Responder // built on first use (the bucket must exist)
	w         *kv.Writer
	watcher   *kv.Watcher        // keeps the responder's allow entries equal to the bucket
	stopWatch context.CancelFunc // ends the watcher's goroutine
	watchDone chan struct{}      // closed when it has ended

	// now is the wall clock (TTLs left, audit times).
	now func() time.Time
}

// NewFactory returns the instance factory that datasource.Manage calls
// for each data source, logging to log.
func NewFactory(log *slog.Logger) datasource.InstanceFactoryFunc {
	return func(ctx context.Context, s backend.DataSourceInstanceSettings) (instancemgmt.Instance, error) {
		cfg, err := ParseSettings(s)
		if err != nil {
			return nil, err
		}
		return NewDatasource(cfg, log.With("datasource", s.UID))
	}
}

// NewDatasource returns a data source for cfg. It does not wait for NATS
// or ClickHouse: both connect in the background and CheckHealth says
// whether they are reachable, so a data source saved while NATS is down
// starts working when it comes back. Dispose closes the connections.
func NewDatasource(cfg Settings, log *slog.Logger) (*Datasource, error) {
	opts := []nats.Option{nats.Name("apiguard-grafana"), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1),
		nats.Timeout(cfg.timeout())}
	switch {
	case cfg.NATSToken != "":
		opts = append(opts, nats.Token(cfg.NATSToken.Reveal()))
	case cfg.NATSUser != "":
		opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword.Reveal()))
	}
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS %s: %w", cfg.NATSURL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("opening JetStream: %w", err)
	}
	ch, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{cfg.ClickHouseAddr},
		Auth:        clickhouse.Auth{Database: "default", Username: cfg.ClickHouseUser, Password: cfg.ClickHousePassword.Reveal()},
		DialTimeout: cfg.timeout(),
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("opening ClickHouse %s: %w", cfg.ClickHouseAddr, err)
	}
	return &Datasource{settings: cfg, log: log, nc: nc, js: js, ch: ch,
		queries: NewQueries(ch, cfg.ClickHouseDatabase), now: time.Now}, nil
}

// Dispose stops the allow entries' watcher and closes the connections.
// Streams still running end with their contexts, which Grafana cancels.
func (d *Datasource) Dispose() {
	d.mu.Lock()
	stop, done := d.stopWatch, d.watchDone
	d.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	d.nc.Close()
	if err := d.ch.Close(); err != nil {
		d.log.Warn("closing ClickHouse", "err", err)
	}
}

// QueryData answers each query: QueryTypeEnforcement from the bucket,
// every other type from ClickHouse (Queries.Handle). An anomalies or
// audit query with "live": true also names its live channel
// (ds/<uid>/anomalies or ds/<uid>/actions) in its first frame's meta. A
// query's failure is its own response's error; the others are still
// answered.
func (d *Datasource) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	resp := backend.NewQueryDataResponse()
	for _, q := range req.Queries {
		if q.QueryType == QueryTypeEnforcement {
			resp.Responses[q.RefID] = d.enforcement(ctx)
			continue
		}
		dr := d.queries.Handle(ctx, req.PluginContext, q)
		if path, ok := liveOf[q.QueryType]; ok && dr.Error == nil && isLive(q.JSON) && req.PluginContext.DataSourceInstanceSettings != nil {
			// Grafana subscribes the panel to the channel named in the
			// first frame's meta, and appends what RunStream sends.
			if len(dr.Frames) == 0 {
				dr.Frames = data.Frames{data.NewFrame(path)}
			}
			if dr.Frames[0].Meta == nil {
				dr.Frames[0].Meta = &data.FrameMeta{}
			}
			dr.Frames[0].Meta.Channel = live.Channel{Scope: live.ScopeDatasource,
				Namespace: req.PluginContext.DataSourceInstanceSettings.UID, Path: path}.String()
		}
		resp.Responses[q.RefID] = dr
	}
	return resp, nil
}

// liveOf maps the query types that may answer with a live channel
// (their model's "live": true) to their stream path.
var liveOf = map[string]string{QueryTypeAnomalies: StreamPathAnomalies, QueryTypeAudit: StreamPathActions}

// isLive reports whether a query's model asks for a live channel.
func isLive(model []byte) bool {
	var m struct {
		Live bool `json:"live"`
	}
	return json.Unmarshal(model, &m) == nil && m.Live
}

// enforcement returns the active entries as a table frame.
func (d *Datasource) enforcement(ctx context.Context) backend.DataResponse {
	w, err := d.writer(ctx)
	if err != nil {
		return backend.ErrDataResponseWithSource(backend.StatusBadGateway, backend.ErrorSourceDownstream, err.Error())
	}
	entries, errs := w.List(ctx)
	if len(entries) == 0 && len(errs) > 0 {
		return backend.ErrDataResponseWithSource(backend.StatusBadGateway, backend.ErrorSourceDownstream, errs[0].Error())
	}
	for _, err := range errs {
		d.log.Warn("malformed enforcement entry", "err", err)
	}
	now := d.now()
	entries = slices.DeleteFunc(entries, func(e enforce.Entry) bool { return e.Expired(now) })
	slices.SortFunc(entries, func(a, b enforce.Entry) int { return b.Created.Compare(a.Created) })
	f := EntriesFrame(entries, now)
	return backend.DataResponse{Frames: data.Frames{f}}
}

// EntriesFrame returns entries as the "enforcement" table: kind, value,
// action, reason, anomaly id, actor, created, expires (null: never) and
// ttl_left_s (null: never).
func EntriesFrame(entries []enforce.Entry, now time.Time) *data.Frame {
	n := len(entries)
	kind, value, action := make([]string, n), make([]string, n), make([]string, n)
	reason, anomaly, actor := make([]string, n), make([]string, n), make([]string, n)
	created := make([]time.Time, n)
	expires := make([]*time.Time, n)
	left := make([]*int64, n)
	for i, e := range entries {
		kind[i], value[i], action[i] = e.Kind.String(), e.Value, e.Action.String()
		reason[i], anomaly[i], actor[i], created[i] = e.Reason, e.AnomalyID, e.Actor, e.Created
		if !e.Expires.IsZero() {
			t := e.Expires
			s := int64(e.Expires.Sub(now).Round(time.Second) / time.Second)
			expires[i], left[i] = &t, &s
		}
	}
	f := data.NewFrame("enforcement",
		data.NewField("kind", nil, kind), data.NewField("value", nil, value), data.NewField("action", nil, action),
		data.NewField("reason", nil, reason), data.NewField("anomaly_id", nil, anomaly), data.NewField("actor", nil, actor),
		data.NewField("created", nil, created), data.NewField("expires", nil, expires),
		data.NewField("ttl_left_s", nil, left))
	f.Meta = &data.FrameMeta{PreferredVisualization: data.VisTypeTable}
	return f
}

// writer returns the bucket's writer, opening the bucket on first use.
func (d *Datasource) writer(ctx context.Context) (*kv.Writer, error) {
	_, w, _, err := d.build(ctx)
	return w, err
}

// responder returns the responder through which the data source's actions
// go, and the bucket's writer, building them on first use (the bucket must
// exist: the pipeline creates it). The responder's allow entries come from
// a watcher (enforce/kv.Watcher) that this data source runs until Dispose,
// so an action costs a few reads however large the bucket; responder
// returns once the watcher has loaded the bucket, or fails when ctx ends
// first.
func (d *Datasource) responder(ctx context.Context) (*responder.Responder, *kv.Writer, error) {
	resp, w, watcher, err := d.build(ctx)
	if err != nil {
		return nil, nil, err
	}
	for !watcher.Synced() {
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("loading the allow entries from %s: %w", event.BucketEnforcement, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return resp, w, nil
}

// build makes the responder, the writer and the watcher once, and starts
// the watcher's goroutine, which Dispose ends.
func (d *Datasource) build(ctx context.Context) (*responder.Responder, *kv.Writer, *kv.Watcher, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.resp != nil {
		return d.resp, d.w, d.watcher, nil
	}
	bucket, err := d.js.KeyValue(ctx, event.BucketEnforcement)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil, nil, fmt.Errorf("bucket %s does not exist: start the apiguard pipeline first", event.BucketEnforcement)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("opening bucket %s: %w", event.BucketEnforcement, err)
	}
	allows := enforce.NewMatcher()
	d.watcher = kv.NewWatcher(kv.Bucket(d.js, bucket), allows, d.log.With("component", "allow-watcher"))
	// A watch that spanned a server restart can be left silent: reload.
	d.nc.SetReconnectHandler(func(*nats.Conn) { d.watcher.Resync() })
	wctx, stop := context.WithCancel(context.Background())
	d.stopWatch, d.watchDone = stop, make(chan struct{})
	go func(w *kv.Watcher, done chan struct{}) {
		defer close(done)
		if err := w.Run(wctx); err != nil {
			d.log.Error("allow entries' watcher stopped", "err", err)
		}
	}(d.watcher, d.watchDone)
	d.w = kv.NewWriter(d.js, bucket)
	// The policy's caps do not bind people (responder.Decision.Policy);
	// allow entries do.
	d.resp = responder.New(responder.DefaultConfig(), d.w, auditStream{d.js}, d.now, d.log.With("component", "responder"))
	d.resp.Allows = allows
	return d.resp, d.w, d.watcher, nil
}

// auditStream publishes actions to the audit stream, as
// pipeline/topology.Publisher does (which this package may not import):
// the subject from event.ActionSubject, the action id as Nats-Msg-Id.
type auditStream struct{ js jetstream.JetStream }

// WriteAction publishes act and waits for the ack.
func (a auditStream) WriteAction(ctx context.Context, act *event.Action) error {
	b, err := event.Marshal(act)
	if err != nil {
		return err
	}
	subject := event.ActionSubject(act.Kind)
	msg := nats.NewMsg(subject)
	msg.Data = b
	msg.Header.Set(event.HeaderSchema, fmt.Sprint(event.SchemaVersion))
	if _, err := a.js.PublishMsg(ctx, msg, jetstream.WithMsgID(act.Id)); err != nil {
		return fmt.Errorf("publishing to %s: %w", subject, err)
	}
	return nil
}

// Interface guards
var (
	_ backend.QueryDataHandler      = (*Datasource)(nil)
	_ backend.CheckHealthHandler    = (*Datasource)(nil)
	_ backend.CallResourceHandler   = (*Datasource)(nil)
	_ backend.StreamHandler         = (*Datasource)(nil)
	_ instancemgmt.InstanceDisposer = (*Datasource)(nil)
	_ responder.AuditSink           = auditStream{}
)
