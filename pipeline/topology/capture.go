package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
)

// ErrStop, returned by ReadEvents' callback, stops the read without an
// error.
var ErrStop = errors.New("stop reading")

// ReadEvents reads the event stream (the capture buffer) from the first
// event stored at or after since through the last one stored when it is
// called, and calls fn with each message's stream sequence, the time the
// stream stored it, and its data, in stream order. subject filters the read: event.SubjectEvents for every
// partition, one partition's subject (event.SubjectEventsT) for the
// principals that hash to it.
//
// It reads with an ordered consumer: ephemeral, unacknowledged, recreated
// by the client if a message is missed, and gone from the server when the
// read ends, so it disturbs neither the pipeline's consumers nor the
// stream. progress, if not nil, is called every 1,000 messages and at the
// end with the messages read and the number there were to read. It
// returns nil at the end or when fn returns ErrStop, fn's other errors,
// and ctx's error if ctx ends first.
func ReadEvents(ctx context.Context, js jetstream.JetStream, subject string, since time.Time,
	fn func(seq uint64, stored time.Time, data []byte) error, progress func(read, total uint64)) error {
	cons, err := js.OrderedConsumer(ctx, event.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return fmt.Errorf("reading %s from %s: %w", event.StreamEvents, since.UTC().Format(time.RFC3339), err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading %s: consumer info: %w", event.StreamEvents, err)
	}
	total := info.NumPending
	var read uint64
	report := func() {
		if progress != nil {
			progress(read, total)
		}
	}
	if total == 0 {
		report()
		return nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return fmt.Errorf("reading %s: %w", event.StreamEvents, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for read < total {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("reading %s after %d messages: %w", event.StreamEvents, read, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("reading %s: message %d: %w", event.StreamEvents, read, err)
		}
		read++
		if err := fn(md.Sequence.Stream, md.Timestamp, m.Data()); err != nil {
			report()
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
		if read%1000 == 0 {
			report()
		}
		// Events published after the read began are not waited for: the
		// read ends with the last one stored when it began.
		if md.NumPending == 0 {
			break
		}
	}
	report()
	return nil
}
