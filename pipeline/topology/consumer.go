package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline"
)

// ConsumerName is the durable consumer of one partition. One pipeline
// replica at a time owns it.
func ConsumerName(partition int) string { return fmt.Sprintf("apiguard-pipeline-p%d", partition) }

// Source is a pipeline.Source over one partition's durable consumer.
type Source struct {
	it jetstream.MessagesContext
}

// NewSource declares (idempotently) the durable consumer of partition and
// starts pulling from it. Call Stop to release it.
func NewSource(ctx context.Context, js jetstream.JetStream, partition int) (*Source, error) {
	cons, err := js.CreateOrUpdateConsumer(ctx, event.StreamEvents, jetstream.ConsumerConfig{
		Durable:       ConsumerName(partition),
		Description:   fmt.Sprintf("apiguard pipeline, partition %d", partition),
		FilterSubject: fmt.Sprintf(event.SubjectEventsT, partition),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		// Keep one partition's events nearly in order: few in flight.
		MaxAckPending: 1024,
	})
	if err != nil {
		return nil, fmt.Errorf("declaring consumer %s: %w", ConsumerName(partition), err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return nil, fmt.Errorf("pulling from %s: %w", ConsumerName(partition), err)
	}
	return &Source{it: it}, nil
}

// Next implements pipeline.Source.
func (s *Source) Next() (pipeline.Message, error) {
	m, err := s.it.Next()
	if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
		return nil, pipeline.ErrStopped
	}
	if err != nil {
		return nil, err
	}
	return msg{m}, nil
}

// Stop implements pipeline.Source.
func (s *Source) Stop() { s.it.Stop() }

type msg struct{ m jetstream.Msg }

func (m msg) Data() []byte             { return m.m.Data() }
func (m msg) Ack() error               { return m.m.Ack() }
func (m msg) Term(reason string) error { return m.m.TermWithReason(reason) }

// Sequence implements pipeline.Message.
func (m msg) Sequence() uint64 {
	md, err := m.m.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}

// Interface guards
var (
	_ pipeline.Source  = (*Source)(nil)
	_ pipeline.Message = msg{}
)
