package topology

import (
	"context"
	"errors"
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
	return ReadStream(ctx, js, event.StreamEvents, subject, since, fn, progress)
}
