package clickhouse

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiguard/apiguard/event"
)

// Stats are the writer's counters, safe to read while it writes.
type Stats struct {
	Rows       atomic.Uint64 // inserted
	Batches    atomic.Uint64 // inserts that succeeded
	Duplicates atomic.Uint64 // records skipped because their id was stored already
	Rejected   atomic.Uint64 // records that could not be decoded
	Errors     atomic.Uint64 // inserts or lookups that failed (and will be retried)
}

// Writer inserts batches into apiguard's tables. Each table has a Store
// (Events, Anomalies, Actions) with the method the pipeline's loader
// calls.
//
// Stores may be called concurrently (a loader with store parallelism).
//
// Idempotency: when the loader says a batch may already be stored (some of
// its messages were delivered before, or an earlier attempt failed after
// the server may have committed it), the store first asks ClickHouse which
// of the batch's ids it has, within the batch's days, and inserts only the
// rest. Ordinary batches skip the lookup. Rows are never double counted by
// the rollup, which the materialized view computes from what is inserted.
type Writer struct {
	c     *Client
	stats Stats

	events    *store[*eventRow]
	anomalies *store[*event.Anomaly]
	actions   *store[*event.Action]

	baseMu    sync.Mutex
	baselines *table[*Baseline]
}

// NewWriter returns a writer over c.
func NewWriter(c *Client) *Writer {
	w := &Writer{c: c, baselines: newTable("baselines", baselineFields())}
	w.events = &store[*eventRow]{w: w, name: "events", free: make(chan *table[*eventRow], 4), fields: eventFields, idColumn: "event_id",
		decode: func(b []byte) (*eventRow, error) {
			// Decoded in place: the strings point into the message, which
			// lives until the loader acknowledges it, after the insert.
			r := &eventRow{}
			if err := event.UnmarshalEventInPlace(b, &r.ev); err != nil {
				return nil, err
			}
			r.kind, r.value = event.PrincipalOf(&r.ev)
			return r, nil
		},
		key: func(r *eventRow) (string, int64) { return r.ev.Id, r.ev.TimeUnixNano },
	}
	w.anomalies = &store[*event.Anomaly]{w: w, name: "anomalies", free: make(chan *table[*event.Anomaly], 4), fields: anomalyFields, idColumn: "anomaly_id",
		decode: func(b []byte) (*event.Anomaly, error) {
			var a event.Anomaly
			return &a, event.UnmarshalAnomaly(b, &a)
		},
		key: func(a *event.Anomaly) (string, int64) { return a.Id, a.TimeUnixNano },
	}
	w.actions = &store[*event.Action]{w: w, name: "actions", free: make(chan *table[*event.Action], 4), fields: actionFields, idColumn: "action_id",
		decode: func(b []byte) (*event.Action, error) {
			var a event.Action
			return &a, event.UnmarshalAction(b, &a)
		},
		key: func(a *event.Action) (string, int64) { return a.Id, a.TimeUnixNano },
	}
	return w
}

// Stats returns the live counters.
func (w *Writer) Stats() *Stats { return &w.stats }

// Table stores a batch of encoded records in one table. Store decodes
// the records and inserts them in one batch. Records that cannot be decoded
// are returned by index with the reason and must not be retried; any other
// failure is returned as err, and then no record of the batch counts as
// stored. maybeStored asks for the lookup that skips ids already stored.
type Table interface {
	Store(ctx context.Context, records [][]byte, maybeStored bool) (rejected map[int]error, err error)
}

// Events stores encoded request events.
func (w *Writer) Events() Table { return w.events }

// Anomalies stores encoded anomalies.
func (w *Writer) Anomalies() Table { return w.anomalies }

// Actions stores encoded actions.
func (w *Writer) Actions() Table { return w.actions }

// WriteBaselines inserts baseline snapshots. A snapshot is keyed by its
// time, detector, API, feature and partition, so writing one twice leaves
// one row once ClickHouse merges.
func (w *Writer) WriteBaselines(ctx context.Context, bs []Baseline) error {
	if len(bs) == 0 {
		return nil
	}
	w.baseMu.Lock()
	defer w.baseMu.Unlock()
	defer w.baselines.reset()
	for i := range bs {
		w.baselines.add(&bs[i])
	}
	if err := send(ctx, w, w.baselines); err != nil {
		return err
	}
	return nil
}

// store is the Table of rows of type R. Store may be called concurrently:
// each call fills a column set of its own, taken from a pool.
type store[R any] struct {
	w      *Writer
	name   string
	fields func() []field[R]
	// free keeps filled-and-reset column sets for reuse: their slices keep
	// their capacity (a sync.Pool would drop them at every GC).
	free     chan *table[R]
	idColumn string
	decode   func([]byte) (R, error)
	key      func(R) (id string, unixNano int64)
}

// Store implements Table.
func (s *store[R]) Store(ctx context.Context, records [][]byte, maybeStored bool) (rejected map[int]error, err error) {
	var t *table[R]
	select {
	case t = <-s.free:
	default:
		t = newTable(s.name, s.fields())
	}
	defer func() {
		t.reset()
		select {
		case s.free <- t:
		default:
		}
	}()

	rows := make([]R, 0, len(records))
	ids := make([]string, 0, len(records))
	seen := make(map[string]struct{}, len(records))
	var lo, hi int64
	for i, b := range records {
		r, err := s.decode(b)
		if err != nil {
			if rejected == nil {
				rejected = map[int]error{}
			}
			rejected[i] = fmt.Errorf("decoding record for %s: %w", s.name, err)
			s.w.stats.Rejected.Add(1)
			continue
		}
		id, ns := s.key(r)
		if _, dup := seen[id]; dup {
			s.w.stats.Duplicates.Add(1)
			continue
		}
		seen[id] = struct{}{}
		if len(rows) == 0 || ns < lo {
			lo = ns
		}
		if len(rows) == 0 || ns > hi {
			hi = ns
		}
		rows = append(rows, r)
		ids = append(ids, id)
	}
	if len(rows) == 0 {
		return rejected, nil
	}
	var stored map[string]bool
	if maybeStored {
		if stored, err = s.storedIDs(ctx, ids, lo, hi); err != nil {
			s.w.stats.Errors.Add(1)
			return rejected, err
		}
	}
	for i, r := range rows {
		if stored[ids[i]] {
			s.w.stats.Duplicates.Add(1)
			continue
		}
		t.add(r)
	}
	if t.rows == 0 {
		return rejected, nil
	}
	if err := send(ctx, s.w, t); err != nil {
		return rejected, err
	}
	return rejected, nil
}

// lookupChunk keeps the lookup query well under ClickHouse's default
// max_query_size (256 KiB) with 26-character ids.
const lookupChunk = 2000

// storedIDs returns which of ids the table has, looking only in the days
// between lo and hi (event time), which the table is partitioned by.
func (s *store[R]) storedIDs(ctx context.Context, ids []string, lo, hi int64) (map[string]bool, error) {
	from := unixTime(lo).Format(time.DateOnly)
	to := unixTime(hi).Format(time.DateOnly)
	q := "SELECT " + s.idColumn + " FROM " + s.w.c.db + "." + s.name +
		" WHERE date >= toDate(?) AND date <= toDate(?) AND has(?, " + s.idColumn + ")"
	stored := map[string]bool{}
	for start := 0; start < len(ids); start += lookupChunk {
		chunk := ids[start:min(start+lookupChunk, len(ids))]
		rows, err := s.w.c.conn.Query(ctx, q, from, to, chunk)
		if err != nil {
			return nil, fmt.Errorf("looking up stored ids in %s: %w", s.name, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("looking up stored ids in %s: %w", s.name, err)
			}
			stored[id] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("looking up stored ids in %s: %w", s.name, err)
		}
	}
	return stored, nil
}

// send inserts the rows of t as one batch: one block, which ClickHouse
// commits whole per partition.
func send[R any](ctx context.Context, w *Writer, t *table[R]) error {
	b, err := w.c.conn.PrepareBatch(ctx, t.insert(w.c.db))
	if err != nil {
		w.stats.Errors.Add(1)
		return fmt.Errorf("preparing insert into %s: %w", t.name, err)
	}
	if err := t.flush(b); err != nil {
		_ = b.Abort()
		w.stats.Errors.Add(1)
		return err
	}
	if err := b.Send(); err != nil {
		w.stats.Errors.Add(1)
		return fmt.Errorf("inserting %d rows into %s: %w", t.rows, t.name, err)
	}
	w.stats.Rows.Add(uint64(t.rows))
	w.stats.Batches.Add(1)
	return nil
}
