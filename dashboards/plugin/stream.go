package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
)

// Live stream paths: a panel subscribes to
// ds/<data source uid>/anomalies or ds/<uid>/actions.
const (
	StreamPathAnomalies = "anomalies"
	StreamPathActions   = "actions"
)

// streamOf maps a stream path to its JetStream stream.
var streamOf = map[string]string{StreamPathAnomalies: event.StreamAnomalies, StreamPathActions: event.StreamActions}

// SubscribeStream admits any signed-in user to the anomalies and actions
// streams (reading them is a viewer's right), and refuses other paths.
func (d *Datasource) SubscribeStream(_ context.Context, req *backend.SubscribeStreamRequest) (*backend.SubscribeStreamResponse, error) {
	if _, ok := streamOf[req.Path]; !ok {
		return &backend.SubscribeStreamResponse{Status: backend.SubscribeStreamStatusNotFound}, nil
	}
	return &backend.SubscribeStreamResponse{Status: backend.SubscribeStreamStatusOK}, nil
}

// PublishStream refuses every publication: the streams are written by the
// pipeline and the responder only.
func (d *Datasource) PublishStream(context.Context, *backend.PublishStreamRequest) (*backend.PublishStreamResponse, error) {
	return &backend.PublishStreamResponse{Status: backend.PublishStreamStatusPermissionDenied}, nil
}

// RunStream sends each anomaly or action that reaches its stream from now
// on as a one-row data frame, through an ephemeral ordered consumer, until
// ctx ends (Grafana cancels it when the last subscriber leaves). A message
// that does not decode is logged and skipped. It returns nil when ctx
// ends, an error when the consumer cannot be created or a frame cannot be
// sent; Grafana then starts it again.
func (d *Datasource) RunStream(ctx context.Context, req *backend.RunStreamRequest, sender *backend.StreamSender) error {
	name, ok := streamOf[req.Path]
	if !ok {
		return fmt.Errorf("no stream %q", req.Path)
	}
	cons, err := d.js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return fmt.Errorf("consuming %s: %w", name, err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		f, err := frameOf(req.Path, m.Data())
		if err != nil {
			d.log.Warn("skipping a message that does not decode", "stream", name, "err", err)
			return
		}
		if err := sender.SendFrame(f, data.IncludeAll); err != nil {
			cancel(fmt.Errorf("sending a frame of %s: %w", req.Path, err))
		}
	})
	if err != nil {
		return fmt.Errorf("consuming %s: %w", name, err)
	}
	defer cc.Stop()
	<-ctx.Done()
	if err := context.Cause(ctx); err != nil && ctx.Err() != nil && err != context.Canceled && err != context.DeadlineExceeded {
		return err
	}
	return nil
}

// frameOf decodes one message of the stream at path into its frame.
func frameOf(path string, b []byte) (*data.Frame, error) {
	if path == StreamPathAnomalies {
		var a event.Anomaly
		if err := event.UnmarshalAnomaly(b, &a); err != nil {
			return nil, err
		}
		return AnomalyFrame(&a), nil
	}
	var a event.Action
	if err := event.UnmarshalAction(b, &a); err != nil {
		return nil, err
	}
	return ActionFrame(&a), nil
}

// AnomalyFrame is the live frame of one anomaly: time, anomaly_id,
// detector, api, principal_kind, principal, score, severity, summary. The
// names are those of the anomalies query's frame, so a panel's links and
// actions work on the rows the stream appends too.
func AnomalyFrame(a *event.Anomaly) *data.Frame {
	return data.NewFrame(StreamPathAnomalies,
		data.NewField("time", nil, []time.Time{time.Unix(0, a.TimeUnixNano).UTC()}),
		data.NewField("anomaly_id", nil, []string{a.Id}),
		data.NewField("detector", nil, []string{a.Detector}),
		data.NewField("api", nil, []string{a.Api}),
		data.NewField("principal_kind", nil, []string{a.GetPrincipal().GetKind()}),
		data.NewField("principal", nil, []string{a.GetPrincipal().GetValue()}),
		data.NewField("score", nil, []float64{a.Score}),
		data.NewField("severity", nil, []string{liveSeverity(a.Severity)}),
		data.NewField("summary", nil, []string{a.Summary}),
	)
}

// ActionFrame is the live frame of one action: time, action_id, kind,
// target_kind, target, ttl_seconds, reason, actor, dry_run, anomaly_id (the
// audit query's names).
func ActionFrame(a *event.Action) *data.Frame {
	return data.NewFrame(StreamPathActions,
		data.NewField("time", nil, []time.Time{time.Unix(0, a.TimeUnixNano).UTC()}),
		data.NewField("action_id", nil, []string{a.Id}),
		data.NewField("kind", nil, []string{a.Kind.Name()}),
		data.NewField("target_kind", nil, []string{a.GetTarget().GetKind()}),
		data.NewField("target", nil, []string{a.GetTarget().GetValue()}),
		data.NewField("ttl_seconds", nil, []int64{a.TtlSeconds}),
		data.NewField("reason", nil, []string{a.Reason}),
		data.NewField("actor", nil, []string{a.Actor}),
		data.NewField("dry_run", nil, []bool{a.DryRun}),
		data.NewField("anomaly_id", nil, []string{a.AnomalyId}),
	)
}

// liveSeverity returns "low", "medium", "high", "critical" or "".
func liveSeverity(s event.Severity) string {
	switch s {
	case event.Severity_SEVERITY_LOW:
		return "low"
	case event.Severity_SEVERITY_MEDIUM:
		return "medium"
	case event.Severity_SEVERITY_HIGH:
		return "high"
	case event.Severity_SEVERITY_CRITICAL:
		return "critical"
	}
	return ""
}
