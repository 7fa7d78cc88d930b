package topology

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	js        jetstream.JetStream
	partition int

	mu      sync.Mutex
	it      jetstream.MessagesContext
	stopped bool
}

// consumerConfig is the durable consumer of a partition; after > 0 starts
// it just after that stream sequence.
func consumerConfig(partition int, after uint64) jetstream.ConsumerConfig {
	c := jetstream.ConsumerConfig{
		Durable:       ConsumerName(partition),
		Description:   fmt.Sprintf("apiguard pipeline, partition %d", partition),
		FilterSubject: fmt.Sprintf(event.SubjectEventsT, partition),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		// Keep one partition's events nearly in order: few in flight.
		MaxAckPending: 1024,
	}
	if after > 0 {
		c.DeliverPolicy, c.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	return c
}

// NewSource binds the durable consumer of partition (declaring it if it
// does not exist) and starts pulling from it. Call Stop to release it.
func NewSource(ctx context.Context, js jetstream.JetStream, partition int) (*Source, error) {
	cons, err := js.Consumer(ctx, event.StreamEvents, ConsumerName(partition))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = js.CreateConsumer(ctx, event.StreamEvents, consumerConfig(partition, 0))
	}
	if err != nil {
		return nil, fmt.Errorf("declaring consumer %s: %w", ConsumerName(partition), err)
	}
	s := &Source{js: js, partition: partition}
	if err := s.pull(cons); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Source) pull(cons jetstream.Consumer) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return fmt.Errorf("pulling from %s: %w", ConsumerName(s.partition), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		it.Stop()
		return nil
	}
	s.it = it
	return nil
}

// Rewind implements pipeline.Rewinder. If the consumer has acknowledged
// events past after (processed after the checkpoint, by a process that
// then stopped), it is recreated to deliver again from after+1; otherwise
// it is left as it is, and the worker skips what it redelivers up to after.
func (s *Source) Rewind(ctx context.Context, after uint64) error {
	name := ConsumerName(s.partition)
	cons, err := s.js.Consumer(ctx, event.StreamEvents, name)
	if err != nil {
		return fmt.Errorf("reading consumer %s: %w", name, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading consumer %s: %w", name, err)
	}
	if info.AckFloor.Stream <= after {
		return nil
	}
	s.mu.Lock()
	if s.it != nil {
		s.it.Stop()
	}
	s.mu.Unlock()
	if err := s.js.DeleteConsumer(ctx, event.StreamEvents, name); err != nil {
		return fmt.Errorf("rewinding consumer %s: %w", name, err)
	}
	if cons, err = s.js.CreateConsumer(ctx, event.StreamEvents, consumerConfig(s.partition, after)); err != nil {
		return fmt.Errorf("rewinding consumer %s to sequence %d: %w", name, after+1, err)
	}
	return s.pull(cons)
}

// Next implements pipeline.Source.
func (s *Source) Next() (pipeline.Message, error) {
	s.mu.Lock()
	it := s.it
	s.mu.Unlock()
	if it == nil {
		return nil, pipeline.ErrStopped
	}
	m, err := it.Next()
	if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stopped || s.it == it {
			return nil, pipeline.ErrStopped
		}
		return nil, errors.New("consumer rewound; pulling again") // the worker retries Next
	}
	if err != nil {
		return nil, err
	}
	return msg{m}, nil
}

// Stop implements pipeline.Source.
func (s *Source) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.it != nil {
		s.it.Stop()
	}
}

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
	_ pipeline.Source   = (*Source)(nil)
	_ pipeline.Rewinder = (*Source)(nil)
	_ pipeline.Message  = msg{}
)
