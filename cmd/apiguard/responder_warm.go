package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// warmResponder gives a starting responder what it knew before the
// process stopped, before it judges an anomaly: its history (every action
// of the audit stream from window ago, as startResponderLoops then keeps
// following) and its record of the requests (Responder.ObserveEvent: who
// succeeded from each network and under each client fingerprint, which
// spares them a network or fingerprint entry), from the events of the
// owned partitions stored since window ago up to where each partition's
// worker resumes. Without it a restarted responder takes a network that
// principals with good history used before the restart, and not since, for
// one nobody uses, and may block it whole.
//
// A partition resumes after its detector checkpoint (checkpoints) when it
// has one, else after its durable consumer's acknowledged floor: the
// events after that are shown to the responder by the pipeline itself, so
// none is counted twice. It returns the actions and events read.
func warmResponder(ctx context.Context, js jetstream.JetStream, resp *responder.Responder, window time.Duration,
	owned []int, checkpoints *topology.Checkpoints) (actions, events int, err error) {
	since := time.Now().Add(-window)
	err = topology.ReadStream(ctx, js, event.StreamActions, event.SubjectActions, since, func(_ uint64, _ time.Time, data []byte) error {
		var a event.Action
		if event.UnmarshalAction(data, &a) == nil { // the audit's own consumers report undecodable actions
			resp.History().Observe(&a)
			actions++
		}
		return nil
	}, nil)
	if err != nil {
		return actions, events, fmt.Errorf("loading the responder's history: %w", err)
	}
	for _, p := range owned {
		upto, err := resumeAfter(ctx, js, p, checkpoints)
		if err != nil {
			return actions, events, err
		}
		if upto == 0 {
			continue // the partition starts from the beginning: the pipeline shows the responder all of it
		}
		err = topology.ReadEvents(ctx, js, fmt.Sprintf(event.SubjectEventsT, p), since, func(seq uint64, _ time.Time, data []byte) error {
			if seq > upto {
				return topology.ErrStop
			}
			var ev event.RequestEvent
			if event.UnmarshalEventInPlace(data, &ev) == nil { // the pipeline counts undecodable events
				resp.ObserveEvent(&ev)
				events++
			}
			return nil
		}, nil)
		if err != nil {
			return actions, events, fmt.Errorf("loading the responder's record of partition %d's requests: %w", p, err)
		}
	}
	return actions, events, nil
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
