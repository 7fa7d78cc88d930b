package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// A starting responder is given what it knew before the process stopped in
// two steps. Its history (every action of the audit stream from window
// ago, as startResponderLoops then keeps following: escalation, groups
// already made) is small and loaded before the first anomaly is judged
// (warmHistory). Its record of the requests (Responder.ObserveEvent: who
// succeeded from each network and under each client fingerprint, which
// spares them a network or fingerprint entry) is read from the events of
// the owned partitions stored since window ago, up to where each
// partition's worker resumes — up to a day of traffic — in the background
// while the pipeline judges (recordLoad): until it is whole the responder
// holds back the decisions that read it (responder.BeginRecordLoad) and
// judges the held-back groups again at its end. Without the record a
// restarted responder takes a network that principals with good history
// used before the restart, and not since, for one nobody uses, and may
// block it whole.

// warmHistory loads the responder's history: the actions of the audit
// stream since window ago. It returns how many it read.
func warmHistory(ctx context.Context, js jetstream.JetStream, resp *responder.Responder, window time.Duration) (int, error) {
	actions := 0
	err := topology.ReadStream(ctx, js, event.StreamActions, event.SubjectActions, time.Now().Add(-window), func(_ uint64, _ time.Time, data []byte) error {
		var a event.Action
		if event.UnmarshalAction(data, &a) == nil { // the audit's own consumers report undecodable actions
			resp.History().Observe(&a)
			actions++
		}
		return nil
	}, nil)
	if err != nil {
		return actions, fmt.Errorf("loading the responder's history: %w", err)
	}
	return actions, nil
}

// partLoad is one partition's share of the record's load: its events
// after done up to upto (stream sequences).
type partLoad struct {
	p          int
	upto, done uint64
}

// recordLoad loads a responder's record of the requests from before the
// start. Build it with planRecordLoad before the pipeline runs (so that
// where each partition resumes is read before its worker moves it), then
// run it in a goroutine of its own.
type recordLoad struct {
	js    jetstream.JetStream
	resp  *responder.Responder
	since time.Time
	parts []partLoad
	// events counts the events shown to the responder.
	events int
	// onEvent, if set, is called before each event is shown (tests use it
	// to hold the load, or to fail it: its error fails the read).
	onEvent func(ctx context.Context) error
}

// warmEventHook, when set (by tests only), becomes every recordLoad's
// onEvent.
var warmEventHook func(ctx context.Context) error

// planRecordLoad returns the load of the record of the owned partitions'
// requests since window ago, up to where each partition's worker resumes:
// after its detector checkpoint (checkpoints) when it has one, else after
// its durable consumer's acknowledged floor — the events after that the
// pipeline shows the responder itself, so none is counted twice. A
// partition that starts from the beginning has nothing to load. It tells
// the responder the load is under way (BeginRecordLoad), even when it
// fails: then the responder holds the groups back until a restart. When
// there is nothing to load it ends the load at once.
func planRecordLoad(ctx context.Context, js jetstream.JetStream, resp *responder.Responder, window time.Duration,
	owned []int, checkpoints *topology.Checkpoints) (*recordLoad, error) {
	resp.BeginRecordLoad()
	l := &recordLoad{js: js, resp: resp, since: time.Now().Add(-window), onEvent: warmEventHook}
	for _, p := range owned {
		upto, err := resumeAfter(ctx, js, p, checkpoints)
		if err != nil {
			return nil, fmt.Errorf("reading where partition %d resumes, for the responder's record: %w", p, err)
		}
		if upto > 0 {
			l.parts = append(l.parts, partLoad{p: p, upto: upto})
		}
	}
	if len(l.parts) == 0 {
		// Nothing to load (a first start): the record is whole before the
		// first anomaly, and run has nothing left to do.
		if _, err := resp.EndRecordLoad(ctx); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// warmRetry bounds the wait between two attempts of a failed load.
const warmRetry = time.Minute

// run loads the record, partition by partition, and then ends the load
// (Responder.EndRecordLoad: the held-back groups are judged again). A
// failed read is logged and retried, after 1 s doubling up to warmRetry,
// from the event after the last one shown; the responder keeps the groups
// held back meanwhile. It returns when the load ends or ctx does.
func (l *recordLoad) run(ctx context.Context, log *slog.Logger) {
	start := time.Now()
	wait := time.Second
	for i := 0; i < len(l.parts); {
		err := l.read(ctx, &l.parts[i])
		if err == nil {
			i++
			continue
		}
		if ctx.Err() != nil {
			return
		}
		log.Error("loading the responder's record of the requests failed; network, prefix and fingerprint groups stay held back; retrying",
			"partition", l.parts[i].p, "events", l.events, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, warmRetry)
	}
	took := time.Since(start)
	rejudged, err := l.resp.EndRecordLoad(ctx)
	if err != nil {
		log.Error("judging the held-back groups again after the record's load", "err", err)
	}
	log.Info("responder loaded its request record", "events", l.events, "partitions", len(l.parts),
		"took", took.Round(time.Millisecond), "groups_judged_again", rejudged)
}

// read shows the responder partition pl's events after pl.done up to
// pl.upto, recording the last one shown in pl.done.
func (l *recordLoad) read(ctx context.Context, pl *partLoad) error {
	err := topology.ReadEvents(ctx, l.js, fmt.Sprintf(event.SubjectEventsT, pl.p), l.since, func(seq uint64, _ time.Time, data []byte) error {
		if seq > pl.upto {
			return topology.ErrStop
		}
		if seq <= pl.done {
			return nil // shown before a failed read
		}
		if l.onEvent != nil {
			if err := l.onEvent(ctx); err != nil {
				return err
			}
		}
		var ev event.RequestEvent
		if event.UnmarshalEventInPlace(data, &ev) == nil { // the pipeline counts undecodable events
			l.resp.ObserveEarlierEvent(&ev)
			l.events++
		}
		pl.done = seq
		return nil
	}, nil)
	if err != nil {
		return fmt.Errorf("loading the responder's record of partition %d's requests: %w", pl.p, err)
	}
	pl.done = pl.upto
	return nil
}

// resumeAfter returns the stream sequence after which partition p's worker
// will resume: its checkpoint's, or its consumer's acknowledged floor.
func resumeAfter(ctx context.Context, js jetstream.JetStream, p int, checkpoints *topology.Checkpoints) (uint64, error) {
	if checkpoints != nil {
		c, ok, err := checkpoints.Load(ctx, p)
		if err != nil {
			return 0, err
		}
		if ok {
			return c.Sequence, nil
		}
	}
	cons, err := js.Consumer(ctx, event.StreamEvents, topology.ConsumerName(p))
	if err != nil {
		return 0, fmt.Errorf("reading consumer %s: %w", topology.ConsumerName(p), err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading consumer %s: %w", topology.ConsumerName(p), err)
	}
	return info.AckFloor.Stream, nil
}

// warmWindow is how far back the responder remembers: its history's and
// its traffic record's window (responder.New).
func warmWindow(cfg responder.Config) time.Duration {
	return max(cfg.Escalation.Window, cfg.Groups.Window, time.Minute)
}

// recordWindow is how far back the request record is loaded:
// responder.record_window, else warmWindow.
func recordWindow(cfg responder.Config) time.Duration {
	if cfg.RecordWindow > 0 {
		return min(cfg.RecordWindow, warmWindow(cfg))
	}
	return warmWindow(cfg)
}
