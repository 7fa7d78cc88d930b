package kv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
)

// MinTTL is the shortest lifetime NATS accepts for a key.
const MinTTL = time.Second

// Writer puts, reads and deletes enforcement entries. It is safe for concurrent use.
type Writer struct {
	js jetstream.JetStream
	kv jetstream.KeyValue
}

// NewWriter returns a Writer for the enforcement bucket kv. The bucket must
// allow per-key TTLs (pipeline/topology creates it so).
func NewWriter(js jetstream.JetStream, kv jetstream.KeyValue) *Writer {
	return &Writer{js: js, kv: kv}
}

// Put stores e. An entry with an expiry gets a key TTL, so NATS removes it
// when it lapses and every watcher sees the removal; proxies also check the
// expiry themselves. now is the time the TTL is counted from.
func (w *Writer) Put(ctx context.Context, e enforce.Entry, now time.Time) (uint64, error) {
	key, value, err := EncodeEntry(e)
	if err != nil {
		return 0, err
	}
	if e.Expires.IsZero() {
		rev, err := w.kv.Put(ctx, key, value)
		if err != nil {
			return 0, fmt.Errorf("putting %s: %w", key, err)
		}
		return rev, nil
	}
	ttl := e.Expires.Sub(now).Round(time.Second)
	if ttl < MinTTL {
		return 0, fmt.Errorf("putting %s: expires in %s, less than %s", key, e.Expires.Sub(now), MinTTL)
	}
	// KeyValue.Put takes no TTL, so publish to the key's subject as
	// KeyValue.Create does, with a per-message TTL.
	msg := nats.NewMsg("$KV." + w.kv.Bucket() + "." + key)
	msg.Data = value
	ack, err := w.js.PublishMsg(ctx, msg, jetstream.WithMsgTTL(ttl))
	if err != nil {
		return 0, fmt.Errorf("putting %s: %w", key, err)
	}
	return ack.Sequence, nil
}

// ErrNotFound reports that the bucket holds no live entry under a key.
var ErrNotFound = errors.New("no enforcement entry")

// ErrChanged reports that an entry was written again after it was read, so
// a removal of what was read did not happen.
var ErrChanged = errors.New("enforcement entry changed since it was read")

// Get returns the entry of kind and value and its revision. When the
// bucket holds none, or only one that has expired at now, the error wraps
// ErrNotFound.
func (w *Writer) Get(ctx context.Context, kind enforce.Kind, value string, now time.Time) (enforce.Entry, uint64, error) {
	v, err := enforce.CanonicalValue(kind, value)
	if err != nil {
		return enforce.Entry{}, 0, fmt.Errorf("reading: %w", err)
	}
	key := Key(kind, v)
	kve, err := w.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return enforce.Entry{}, 0, fmt.Errorf("%w for %s %s", ErrNotFound, kind, v)
	}
	if err != nil {
		return enforce.Entry{}, 0, fmt.Errorf("reading %s: %w", key, err)
	}
	e, err := DecodeEntry(key, kve.Value())
	if err != nil {
		return enforce.Entry{}, 0, err
	}
	if e.Expired(now) {
		return enforce.Entry{}, 0, fmt.Errorf("%w for %s %s (the last one expired at %s)", ErrNotFound, kind, v, e.Expires.UTC().Format(time.RFC3339))
	}
	return e, kve.Revision(), nil
}

// DeleteRevision removes the entry of kind and value if it is still the one
// at revision rev (from Get). If it was written again since, it is kept and
// the error wraps ErrChanged.
func (w *Writer) DeleteRevision(ctx context.Context, kind enforce.Kind, value string, rev uint64) error {
	v, err := enforce.CanonicalValue(kind, value)
	if err != nil {
		return fmt.Errorf("deleting: %w", err)
	}
	key := Key(kind, v)
	err = w.kv.Purge(ctx, key, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("deleting %s: %w", key, ErrChanged)
	}
	if err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	return nil
}

// Delete removes the entry of kind and value. Deleting an absent entry is not an error.
func (w *Writer) Delete(ctx context.Context, kind enforce.Kind, value string) error {
	v, err := enforce.CanonicalValue(kind, value)
	if err != nil {
		return fmt.Errorf("deleting: %w", err)
	}
	key := Key(kind, v)
	if err := w.kv.Purge(ctx, key); err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	return nil
}

// List returns every entry in the bucket. Malformed entries are returned as
// errors beside the good ones. It reads the bucket's stream in large
// batches (the last message of every key), so a large bucket lists in
// seconds, not one round trip per key.
func (w *Writer) List(ctx context.Context) ([]enforce.Entry, []error) {
	name := "KV_" + w.kv.Bucket()
	fail := func(err error) ([]enforce.Entry, []error) {
		return nil, []error{fmt.Errorf("listing %s: %w", event.BucketEnforcement, err)}
	}
	stream, err := w.js.Stream(ctx, name)
	if err != nil {
		return fail(err)
	}
	prefix := "$KV." + w.kv.Bucket() + "."
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{prefix + ">"},
		DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy})
	if err != nil {
		return fail(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(loadBatch))
	if err != nil {
		return fail(err)
	}
	defer it.Stop()
	var entries []enforce.Entry
	var errs []error
	pending := uint64(0)
	if ci := cons.CachedInfo(); ci != nil {
		pending = ci.NumPending
	}
	for pending > 0 {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return entries, append(errs, fmt.Errorf("listing %s: %w", event.BucketEnforcement, err))
		}
		md, err := msg.Metadata()
		if err != nil {
			return entries, append(errs, fmt.Errorf("listing %s: %w", event.BucketEnforcement, err))
		}
		pending = md.NumPending
		if isDelete(msg) {
			continue
		}
		e, err := DecodeEntry(msg.Subject()[len(prefix):], msg.Data())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		entries = append(entries, e)
	}
	return entries, errs
}
