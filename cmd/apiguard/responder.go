package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// newRevoker returns the revoker of cfg's issuers, nil when none is
// configured. It does no I/O; startResponderLoops runs it. Only the
// pipeline calls issuers, so only it needs their client secrets: a secret
// missing from its environment is an error here, at its start.
func newRevoker(cfg responder.Config, audit responder.AuditSink, log *slog.Logger) (*responder.Revoker, error) {
	if len(cfg.Revocation.Issuers) == 0 {
		return nil, nil
	}
	if err := cfg.Revocation.Validate(os.Getenv); err != nil {
		return nil, err
	}
	return responder.NewRevoker(cfg.Revocation, os.Getenv, audit, time.Now, log.With("component", "revoker")), nil
}

// startResponderLoops starts in g what the responder needs beside the
// pipeline: its revoker, and the feed of its history from the audit stream
// (the escalation window back, then every new action), which is how a
// restarted responder and every replica know each principal's offences.
func startResponderLoops(ctx context.Context, g *errgroup.Group, js jetstream.JetStream, resp *responder.Responder,
	cfg responder.Config, log *slog.Logger) {
	if resp.Revoker != nil {
		g.Go(func() error { return resp.Revoker.Run(ctx) })
	}
	since := time.Now().Add(-max(cfg.Escalation.Window, cfg.Groups.Window))
	g.Go(func() error {
		return followActions(ctx, js, resp.History(), since, log.With("component", "responder-history"))
	})
}

// followActions feeds h with the audit stream from since until ctx ends,
// starting again after an error from the last action it read. It returns
// nil when ctx ends.
func followActions(ctx context.Context, js jetstream.JetStream, h *responder.History, since time.Time, log *slog.Logger) error {
	for {
		last, err := followActionsOnce(ctx, js, h, since)
		if !last.IsZero() {
			since = last
		}
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("following the audit stream; starting again", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func followActionsOnce(ctx context.Context, js jetstream.JetStream, h *responder.History, since time.Time) (time.Time, error) {
	var last time.Time
	cons, err := js.OrderedConsumer(ctx, event.StreamActions, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{event.SubjectActions},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return last, err
	}
	it, err := cons.Messages()
	if err != nil {
		return last, err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		m, err := it.Next()
		if err != nil {
			return last, err
		}
		var a event.Action
		if err := event.UnmarshalAction(m.Data(), &a); err != nil {
			continue // the audit's own consumers report undecodable actions
		}
		h.Observe(&a)
		if md, err := m.Metadata(); err == nil {
			last = md.Timestamp
		}
	}
}
