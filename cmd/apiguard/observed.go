package main

import (
	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// observedEngine is a partition's detector engine whose events the
// responder sees too (responder.ObserveEvent: the networks principals with
// good history use, and throttled principals that defy their throttle).
// The engine's other methods (checkpoints, baselines) are its own.
type observedEngine struct {
	*detectors.Engine
	resp *responder.Responder
}

// Observe runs the detectors on ev, then shows it to the responder; an
// anomaly the responder raises (a throttle defied) follows the detectors'.
func (o *observedEngine) Observe(ev *event.RequestEvent) []*event.Anomaly {
	out := o.Engine.Observe(ev)
	if a := o.resp.ObserveEvent(ev); a != nil {
		out = append(out, a)
	}
	return out
}
