// Package emit provides the proxy's event publisher: a bounded queue that
// never blocks a request, batched asynchronous JetStream publishes with
// Nats-Msg-Id set to the event id, and a disk spool that holds events while
// NATS is away and sends them, in order, when it returns.
package emit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
)

// Config sizes the emitter.
type Config struct {
	// QueueSize bounds the events waiting to be published; when it is full
	// new events are dropped, counted and logged, never waited for.
	QueueSize int `yaml:"queue_size"`
	// BatchSize is the most events published before waiting for acks.
	BatchSize int `yaml:"batch_size"`
	// FlushInterval is the longest an event waits for its batch to fill.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// PublishTimeout bounds the wait for a batch's acks; events not acked
	// by then are spooled (and de-duplicated by id if they did arrive).
	PublishTimeout time.Duration `yaml:"publish_timeout"`
	// SpoolDir holds events while NATS is away.
	SpoolDir string `yaml:"spool_dir"`
	// SpoolMaxBytes bounds the spool; past it events are dropped, counted and logged.
	SpoolMaxBytes int64 `yaml:"spool_max_bytes"`
	// SpoolSegmentBytes is the size of one spool file.
	SpoolSegmentBytes int64 `yaml:"spool_segment_bytes"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		QueueSize: 65536, BatchSize: 512, FlushInterval: 2 * time.Millisecond, PublishTimeout: 5 * time.Second,
		SpoolDir: "var/spool", SpoolMaxBytes: 1 << 30, SpoolSegmentBytes: 16 << 20,
	}
}

// Validate reports the first bad field by its config key.
func (c Config) Validate() error {
	switch {
	case c.QueueSize < 1:
		return fmt.Errorf("emit.queue_size: %d, want at least 1", c.QueueSize)
	case c.BatchSize < 1 || c.BatchSize > c.QueueSize:
		return fmt.Errorf("emit.batch_size: %d, want 1..queue_size", c.BatchSize)
	case c.FlushInterval <= 0:
		return errors.New("emit.flush_interval: must be positive")
	case c.PublishTimeout <= 0:
		return errors.New("emit.publish_timeout: must be positive")
	case c.SpoolDir == "":
		return errors.New("emit.spool_dir: must be set")
	case c.SpoolSegmentBytes < 1<<10:
		return fmt.Errorf("emit.spool_segment_bytes: %d, want at least 1 KiB", c.SpoolSegmentBytes)
	case c.SpoolMaxBytes < c.SpoolSegmentBytes:
		return fmt.Errorf("emit.spool_max_bytes: %d, want at least spool_segment_bytes", c.SpoolMaxBytes)
	}
	return nil
}

// Stats are the emitter's counters; safe to read while it runs.
type Stats struct {
	Emitted       atomic.Uint64 // taken into the queue
	Published     atomic.Uint64 // acked by JetStream, first try or from the spool
	Duplicates    atomic.Uint64 // of those, acks saying the id was already stored
	Spooled       atomic.Uint64 // written to the spool
	DroppedQueue  atomic.Uint64 // queue full
	DroppedSpool  atomic.Uint64 // spool full or failing
	EncodeErrors  atomic.Uint64
	PublishErrors atomic.Uint64
}

// Emitter implements the proxy's Emitter over JetStream. Emit is safe from
// any goroutine; Run owns the publishing and must be running for events to
// leave the queue. Build it with New.
type Emitter struct {
	cfg   Config
	nc    *nats.Conn
	js    jetstream.JetStream
	spool *Spool
	queue chan *event.RequestEvent
	log   *slog.Logger
	stats Stats
	// subjects caches each partition's subject, so encoding an event
	// does not format it again; only Run's goroutine uses it.
	subjects []string

	lastDropLog atomic.Int64
}

// subject returns the subject of partition p's events.
func (e *Emitter) subject(p uint32) string {
	if int(p) >= len(e.subjects) {
		if p >= 1<<16 { // not a partition count anyone configures: do not cache
			return fmt.Sprintf(event.SubjectEventsT, p)
		}
		e.subjects = append(e.subjects, make([]string, int(p)+1-len(e.subjects))...)
	}
	if e.subjects[p] == "" {
		e.subjects[p] = fmt.Sprintf(event.SubjectEventsT, p)
	}
	return e.subjects[p]
}

// New returns an Emitter publishing on js over nc. The connection should be
// made with nats.ReconnectBufSize(-1), so that publishes while disconnected
// fail at once and go to the spool instead of a memory buffer. New opens the
// spool directory, which may hold events from an earlier run.
func New(cfg Config, nc *nats.Conn, js jetstream.JetStream, log *slog.Logger) (*Emitter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	spool, err := OpenSpool(cfg.SpoolDir, cfg.SpoolMaxBytes, cfg.SpoolSegmentBytes)
	if err != nil {
		return nil, err
	}
	return &Emitter{cfg: cfg, nc: nc, js: js, spool: spool, queue: make(chan *event.RequestEvent, cfg.QueueSize), log: log}, nil
}

// Stats returns the live counters.
func (e *Emitter) Stats() *Stats { return &e.stats }

// QueueLen is the number of events waiting in the queue.
func (e *Emitter) QueueLen() int { return len(e.queue) }

// SpoolBytes returns the bytes waiting in the spool.
func (e *Emitter) SpoolBytes() int64 { return e.spool.Bytes() }

// Emit queues ev without blocking. If the queue is full the event is
// dropped, counted and logged (at most once a second).
func (e *Emitter) Emit(ev *event.RequestEvent) {
	select {
	case e.queue <- ev:
		e.stats.Emitted.Add(1)
	default:
		e.stats.DroppedQueue.Add(1)
		e.logDrop("event queue full, dropping event", "queue_size", e.cfg.QueueSize)
	}
}

func (e *Emitter) logDrop(msg string, args ...any) {
	now := time.Now().UnixNano()
	if last := e.lastDropLog.Load(); now-last > int64(time.Second) && e.lastDropLog.CompareAndSwap(last, now) {
		e.log.Error(msg, append(args, "dropped_queue_total", e.stats.DroppedQueue.Load(),
			"dropped_spool_total", e.stats.DroppedSpool.Load())...)
	}
}

// Run publishes until ctx is done. Then it stops taking from the queue,
// publishes or spools what is left within the publish timeout, closes the
// spool and returns nil. Stop sending to Emit before ctx ends.
func (e *Emitter) Run(ctx context.Context) error {
	batch := make([]*event.RequestEvent, 0, e.cfg.BatchSize)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return e.shutdown()
		case ev := <-e.queue:
			batch = e.fill(append(batch, ev))
			e.send(ctx, e.encode(batch))
		case <-tick.C:
			e.drain(ctx)
		}
	}
}

// fill takes more queued events into batch, waiting at most FlushInterval.
func (e *Emitter) fill(batch []*event.RequestEvent) []*event.RequestEvent {
	timer := time.NewTimer(e.cfg.FlushInterval)
	defer timer.Stop()
	for len(batch) < e.cfg.BatchSize {
		select {
		case ev := <-e.queue:
			batch = append(batch, ev)
		case <-timer.C:
			return batch
		}
	}
	return batch
}

// encode marshals a batch into one buffer, sized up front, of which each
// record's Data is a slice. The buffer is never reused: records may be held
// by pending publishes and the spool after encode returns.
func (e *Emitter) encode(batch []*event.RequestEvent) []Record {
	size := 0
	for _, ev := range batch {
		ev.Schema = event.SchemaVersion
		size += ev.SizeVT()
	}
	buf := make([]byte, 0, size)
	recs := make([]Record, 0, len(batch))
	for _, ev := range batch {
		start := len(buf)
		var err error
		buf, err = event.AppendMarshal(buf, ev)
		if err != nil {
			e.stats.EncodeErrors.Add(1)
			e.log.Error("dropping unencodable event", "id", ev.Id, "err", err)
			continue
		}
		recs = append(recs, Record{Subject: e.subject(ev.Partition), MsgID: ev.Id,
			Data: buf[start:len(buf):len(buf)]})
	}
	return recs
}

// send publishes recs, or spools them if NATS is away, if publishing fails,
// or if older events are still spooled (so that order is kept).
func (e *Emitter) send(ctx context.Context, recs []Record) {
	if len(recs) == 0 {
		return
	}
	if !e.nc.IsConnected() || e.spool.Bytes() > 0 {
		e.toSpool(recs)
		e.drain(ctx)
		return
	}
	if failed := e.publish(recs); len(failed) > 0 {
		e.toSpool(failed)
	}
}

// publish sends recs asynchronously, waits for their acks up to the publish
// timeout, and returns those that were not acked. It does not stop early on
// shutdown: an ack abandoned then would spool an event that was stored.
func (e *Emitter) publish(recs []Record) []Record {
	type pending struct {
		rec Record
		fut jetstream.PubAckFuture
	}
	inflight := make([]pending, 0, len(recs))
	var failed []Record
	for i, r := range recs {
		m := &nats.Msg{Subject: r.Subject, Data: r.Data, Header: nats.Header{}}
		m.Header.Set(event.HeaderSchema, schemaHeader)
		fut, err := e.js.PublishMsgAsync(m, jetstream.WithMsgID(r.MsgID))
		if err != nil {
			// NATS is away or stalled: this and the rest fail, and those
			// already sent are still waited for below.
			e.stats.PublishErrors.Add(1)
			failed = append(failed, recs[i:]...)
			break
		}
		inflight = append(inflight, pending{r, fut})
	}
	timeout := time.NewTimer(e.cfg.PublishTimeout)
	defer timeout.Stop()
	for i, p := range inflight {
		select {
		case ack := <-p.fut.Ok():
			e.stats.Published.Add(1)
			if ack.Duplicate {
				e.stats.Duplicates.Add(1)
			}
			continue
		case err := <-p.fut.Err():
			e.stats.PublishErrors.Add(1)
			e.log.Debug("event publish failed", "id", p.rec.MsgID, "err", err)
			failed = append(failed, p.rec)
			continue
		case <-timeout.C:
		}
		// Out of time: this and every later record count as failed. Some
		// may have been stored; JetStream drops their re-sends by id.
		e.stats.PublishErrors.Add(1)
		for _, q := range inflight[i:] {
			failed = append(failed, q.rec)
		}
		break
	}
	return failed
}

var schemaHeader = strconv.Itoa(event.SchemaVersion)

// toSpool writes recs to the spool; what does not fit is dropped, counted and logged.
func (e *Emitter) toSpool(recs []Record) {
	n, err := e.spool.Append(recs)
	e.stats.Spooled.Add(uint64(n))
	if err != nil {
		e.stats.DroppedSpool.Add(uint64(len(recs) - n))
		e.logDrop("spool refused events, dropping them", "err", err, "dropped", len(recs)-n)
	}
}

// drain sends spooled segments, oldest first, while NATS is connected. A
// segment is removed only when every record in it was acked; otherwise it
// stays for the next try. It returns to intake when the queue is half full,
// so that a long drain does not make the queue drop new events.
func (e *Emitter) drain(ctx context.Context) {
	for e.nc.IsConnected() && ctx.Err() == nil && len(e.queue) < cap(e.queue)/2 {
		path, ok, err := e.spool.Oldest()
		if err != nil {
			e.log.Error("reading spool", "err", err)
			return
		}
		if !ok {
			return
		}
		recs, err := ReadSegment(path)
		if err != nil {
			// The records before the damage are sent; the rest are lost,
			// and that is counted and logged.
			e.stats.DroppedSpool.Add(1)
			e.log.Error("spool segment damaged, sending what precedes the damage", "err", err, "records", len(recs))
		}
		sent := len(recs)
		for len(recs) > 0 {
			n := min(len(recs), e.cfg.BatchSize)
			if failed := e.publish(recs[:n]); len(failed) > 0 {
				e.log.Warn("spool drain interrupted; will retry", "segment", path, "unsent", len(failed))
				return
			}
			recs = recs[n:]
		}
		if err := e.spool.Remove(path); err != nil {
			e.log.Error("removing sent spool segment", "err", err)
			return
		}
		e.log.Info("spool segment sent", "segment", path, "records", sent, "spool_bytes", e.spool.Bytes())
	}
}

// shutdown publishes or spools what is queued, sends what is spooled if NATS
// is there, then closes the spool. It is bounded by the publish timeout.
func (e *Emitter) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.PublishTimeout)
	defer cancel()
	for {
		batch := make([]*event.RequestEvent, 0, e.cfg.BatchSize)
	take:
		for len(batch) < e.cfg.BatchSize {
			select {
			case ev := <-e.queue:
				batch = append(batch, ev)
			default:
				break take
			}
		}
		if len(batch) == 0 {
			break
		}
		recs := e.encode(batch)
		if ctx.Err() != nil {
			e.toSpool(recs)
			continue
		}
		e.send(ctx, recs)
	}
	// Send what is spooled while NATS is there, so a clean stop leaves
	// nothing behind; what cannot be sent stays for the next start.
	e.drain(ctx)
	if err := e.spool.Close(); err != nil {
		return fmt.Errorf("closing spool: %w", err)
	}
	return nil
}
