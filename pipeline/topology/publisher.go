package topology

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline"
)

// Publisher writes anomalies and actions to their streams, each with its id
// as Nats-Msg-Id so a retry is stored once. It is safe for concurrent use.
type Publisher struct {
	js jetstream.JetStream
}

// NewPublisher returns a Publisher on js.
func NewPublisher(js jetstream.JetStream) *Publisher { return &Publisher{js: js} }

// WriteAnomaly publishes a to the anomaly stream and waits for the ack.
func (p *Publisher) WriteAnomaly(ctx context.Context, a *event.Anomaly) error {
	return p.publish(ctx, fmt.Sprintf(event.SubjectAnomaliesT, a.Detector), a)
}

// WriteAction publishes act to the audit stream and waits for the ack.
func (p *Publisher) WriteAction(ctx context.Context, act *event.Action) error {
	return p.publish(ctx, event.ActionSubject(act.Kind), act)
}

func (p *Publisher) publish(ctx context.Context, subject string, m event.Message) error {
	data, err := event.Marshal(m)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(event.HeaderSchema, fmt.Sprint(event.SchemaVersion))
	if _, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(m.GetId())); err != nil {
		return fmt.Errorf("publishing to %s: %w", subject, err)
	}
	return nil
}

// Interface guards
var _ pipeline.Sink = (*Publisher)(nil)
