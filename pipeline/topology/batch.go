package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/pipeline"
)

// BatchAckWait is how long the server waits for a loader's ack before it
// delivers a message again. Loaders mark held messages in progress well
// within it (pipeline.LoaderConfig.KeepAlive).
const BatchAckWait = 60 * time.Second

// BatchSource is a pipeline.BatchSource over a durable consumer of a whole
// stream. Several loaders may share the consumer (replicas): the server
// gives each message to one of them.
type BatchSource struct {
	it jetstream.MessagesContext
}

// NewBatchSource declares (idempotently) the durable consumer durable on
// stream and starts pulling from it. maxPending must be at least the
// loader's batch size, or batches never fill. Call Stop to release it.
func NewBatchSource(ctx context.Context, js jetstream.JetStream, stream, durable string, maxPending int) (*BatchSource, error) {
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "apiguard store loader",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       BatchAckWait,
		MaxAckPending: maxPending,
	})
	if err != nil {
		return nil, fmt.Errorf("declaring consumer %s on %s: %w", durable, stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(min(maxPending, 4096)))
	if err != nil {
		return nil, fmt.Errorf("pulling from %s: %w", durable, err)
	}
	return &BatchSource{it: it}, nil
}

// Next implements pipeline.BatchSource.
func (s *BatchSource) Next(ctx context.Context) (pipeline.BatchMessage, error) {
	m, err := s.it.Next(jetstream.NextContext(ctx))
	if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
		return nil, pipeline.ErrStopped
	}
	if err != nil {
		return nil, err
	}
	return batchMsg{msg{m}}, nil
}

// Stop implements pipeline.BatchSource.
func (s *BatchSource) Stop() { s.it.Stop() }

type batchMsg struct{ msg }

func (m batchMsg) InProgress() error { return m.m.InProgress() }

// Redelivered implements pipeline.BatchMessage. Without metadata it says
// yes: a needless lookup is cheaper than a duplicate row.
func (m batchMsg) Redelivered() bool {
	md, err := m.m.Metadata()
	return err != nil || md.NumDelivered > 1
}

// Pending is the number of messages the consumer has not yet delivered,
// for lag metrics.
func Pending(ctx context.Context, js jetstream.JetStream, stream, durable string) (uint64, error) {
	c, err := js.Consumer(ctx, stream, durable)
	if err != nil {
		return 0, fmt.Errorf("looking up consumer %s: %w", durable, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading consumer %s: %w", durable, err)
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}

// Interface guards
var (
	_ pipeline.BatchSource  = (*BatchSource)(nil)
	_ pipeline.BatchMessage = batchMsg{}
)

// Nak asks for the message to be delivered again.
func (m batchMsg) Nak() error { return m.m.Nak() }
