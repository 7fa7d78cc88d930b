package kv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/enforce"
)

// bulkWindow is how many puts PutBulk keeps unacknowledged at once, under
// the 4000 a JetStream context allows by default.
const bulkWindow = 2048

// PutBulk stores entries, as Put does one by one, with up to bulkWindow
// puts in flight: an import of a large list is bound by the server, not by
// round trips. Every entry is checked before any is written; a bad one is
// an error naming its index and nothing is written. It returns how many
// entries the server acknowledged, in order: on an error, the entries
// before that count are stored, those after it may or may not be.
func (w *Writer) PutBulk(ctx context.Context, entries []enforce.Entry, now time.Time) (int, error) {
	type put struct {
		key   string
		value []byte
		ttl   time.Duration
	}
	puts := make([]put, len(entries))
	for i, e := range entries {
		key, value, err := EncodeEntry(e)
		if err != nil {
			return 0, fmt.Errorf("entry %d: %w", i, err)
		}
		p := put{key: key, value: value}
		if !e.Expires.IsZero() {
			p.ttl = e.Expires.Sub(now).Round(time.Second)
			if p.ttl < MinTTL {
				return 0, fmt.Errorf("entry %d: putting %s: expires in %s, less than %s", i, key, e.Expires.Sub(now), MinTTL)
			}
		}
		puts[i] = p
	}
	prefix := "$KV." + w.kv.Bucket() + "."
	// The puts in flight, oldest first: a ring of bulkWindow futures.
	var ring [bulkWindow]jetstream.PubAckFuture
	head, inFlight, acked := 0, 0, 0
	// wait takes the acknowledgement of the oldest put in flight.
	wait := func() error {
		f := ring[head]
		ring[head] = nil
		head = (head + 1) % bulkWindow
		inFlight--
		select {
		case <-ctx.Done():
			return fmt.Errorf("putting %s: %w", f.Msg().Subject[len(prefix):], ctx.Err())
		case <-f.Ok():
			acked++
			return nil
		case err := <-f.Err():
			return fmt.Errorf("putting %s: %w", f.Msg().Subject[len(prefix):], err)
		}
	}
	for _, p := range puts {
		if inFlight == bulkWindow {
			if err := wait(); err != nil {
				return acked, err
			}
		}
		msg := nats.NewMsg(prefix + p.key)
		msg.Data = p.value
		var opts []jetstream.PublishOpt
		if p.ttl > 0 {
			opts = append(opts, jetstream.WithMsgTTL(p.ttl))
		}
		f, err := w.js.PublishMsgAsync(msg, opts...)
		// The connection's own limit on puts in flight (shared with other
		// publishers on it) can be lower than the window: take an
		// acknowledgement, then try again.
		for errors.Is(err, jetstream.ErrTooManyStalledMsgs) && inFlight > 0 {
			if err := wait(); err != nil {
				return acked, err
			}
			f, err = w.js.PublishMsgAsync(msg, opts...)
		}
		if err != nil {
			return acked, fmt.Errorf("putting %s: %w", p.key, err)
		}
		ring[(head+inFlight)%bulkWindow] = f
		inFlight++
	}
	for inFlight > 0 {
		if err := wait(); err != nil {
			return acked, err
		}
	}
	return acked, nil
}
