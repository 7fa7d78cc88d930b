package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ReadStream reads a stream from the first message stored at or after
// since through the last one stored when it is called, as ReadEvents
// does for the event stream: subject filters the read, fn gets each
// message's stream sequence, stored time and data in stream order, and
// returning ErrStop from fn ends the read without an error. It uses an
// ordered consumer, ephemeral and unacknowledged, so it disturbs neither
// the stream nor its durable consumers.
func ReadStream(ctx context.Context, js jetstream.JetStream, stream, subject string, since time.Time,
	fn func(seq uint64, stored time.Time, data []byte) error, progress func(read, total uint64)) error {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return fmt.Errorf("reading %s from %s: %w", stream, since.UTC().Format(time.RFC3339), err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading %s: consumer info: %w", stream, err)
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
		return fmt.Errorf("reading %s: %w", stream, err)
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
			return fmt.Errorf("reading %s after %d messages: %w", stream, read, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("reading %s: message %d: %w", stream, read, err)
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
