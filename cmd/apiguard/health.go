package main

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/pipeline"
	"github.com/apiguard/apiguard/pipeline/topology"
	"github.com/apiguard/apiguard/proxy"
)

// Health probes. Every process that serves /metrics (metrics.listen) also
// answers there
//
//	GET /healthz  200 while the process runs
//	GET /readyz   200 when its parts are ready, else 503 with the reason
//
// as the proxy's admin listener does, and like /metrics without a token:
// they say only whether the process is up and ready, and the metrics
// listener is where Prometheus and the kubelet already reach it. The
// admin listener keeps asking for its token off loopback for every path,
// these two included, so that its /reload is never open.

// readiness is what a process's /readyz answers: "starting" until Set
// gives it the check of its running parts, then what that check says.
// The zero value answers "starting"; it is safe for concurrent use.
type readiness struct{ check atomic.Pointer[func() error] }

// Set makes check the answer of Ready.
func (r *readiness) Set(check func() error) { r.check.Store(&check) }

// Ready returns nil when the process is ready, or why it is not.
func (r *readiness) Ready() error {
	c := r.check.Load()
	if c == nil {
		return errors.New("starting")
	}
	return (*c)()
}

// probeRoutes adds GET /healthz and GET /readyz, answered from r, to mux.
func probeRoutes(mux *http.ServeMux, r *readiness) {
	h := (&proxy.Admin{Ready: r.Ready}).Handler()
	mux.Handle("GET /healthz", h)
	mux.Handle("GET /readyz", h)
}

// watcherReady is the proxy's readiness: its enforcement state loaded.
func watcherReady(w *kv.Watcher) error {
	if !w.Synced() {
		return errors.New("enforcement state not loaded yet")
	}
	return nil
}

// startedSource is a partition's consumer that records when the
// partition's worker first asks it for an event: the worker does so once
// it has restored its detector checkpoint and rewound the consumer past
// it. Its other methods (Rewind, Stop) are the consumer's.
type startedSource struct {
	*topology.Source
	started atomic.Bool
}

// Next implements pipeline.Source.
func (s *startedSource) Next() (pipeline.Message, error) {
	if !s.started.Load() {
		s.started.Store(true)
	}
	return s.Source.Next()
}

// pipelineReady returns the pipeline's readiness: connected to NATS, the
// responder's history loaded (warmed, responder_warm.go; not its request
// record, loaded in the background), every owned partition's checkpoint
// restored and its consumer attached (its worker consuming), and the allow
// entries loaded.
func pipelineReady(nc *nats.Conn, warmed *atomic.Bool, sources map[int]*startedSource, allowsSynced func() bool) func() error {
	return func() error {
		if st := nc.Status(); st != nats.CONNECTED {
			return fmt.Errorf("NATS connection %s", strings.ToLower(st.String()))
		}
		if !warmed.Load() {
			return errors.New("the responder is loading its history")
		}
		var waiting []int
		for p, s := range sources {
			if !s.started.Load() {
				waiting = append(waiting, p)
			}
		}
		if len(waiting) > 0 {
			slices.Sort(waiting)
			return fmt.Errorf("partition(s) %s not consuming yet (restoring the detector checkpoint)", joinInts(waiting))
		}
		if !allowsSynced() {
			return errors.New("allow entries not loaded yet")
		}
		return nil
	}
}

// joinInts joins ns with commas.
func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}
