package responder

import (
	"context"
	"fmt"

	"github.com/apiguard/apiguard/event"
)

// The load of the record from before the start. A restarted responder
// judges anomalies at once, while its record of who succeeded from each
// network and under each fingerprint (traffic.go) is read back from the
// event stream in the background (BeginRecordLoad, ObserveEarlierEvent,
// EndRecordLoad). Until the record is whole, what reads it is held back:
// the network, ASN-prefix and fingerprint group entries, a network
// anomaly's entry and, under spare_shared, a member's address are recorded
// as dry-run saying so; the group entries are judged again when the load
// ends, with the whole record. Per-principal blocks, throttles and
// revocations do not read the record and go ahead.

// maxPending bounds the group decisions queued to be judged again when
// the load ends; past it a held-back group waits for the campaign's next
// block.
const maxPending = 1024

// BeginRecordLoad tells the responder that its record of the requests
// from before its start is being loaded (ObserveEarlierEvent): until
// EndRecordLoad, the decisions that read the record are held back. Call
// it before the first anomaly is judged.
func (r *Responder) BeginRecordLoad() {
	t := &r.traffic
	t.pendMu.Lock()
	defer t.pendMu.Unlock()
	t.loading.Store(true)
}

// ObserveEarlierEvent shows the responder a request from before its
// start, for its record of who succeeded from each network and under each
// fingerprint; unlike ObserveEvent it counts towards no throttle (the
// throttles this process follows began after it). It may be called
// concurrently with ObserveEvent, in any order of event time: the record
// keeps each principal's latest use.
func (r *Responder) ObserveEarlierEvent(ev *event.RequestEvent) {
	r.observe(ev, false)
	r.traffic.loaded.Add(1)
}

// EndRecordLoad tells the responder its record is whole: the decisions
// held back since BeginRecordLoad are judged again, in the order they
// were first made, with ctx. It returns how many were, and the first
// error of one (the others are still judged).
func (r *Responder) EndRecordLoad(ctx context.Context) (int, error) {
	t := &r.traffic
	t.pendMu.Lock()
	t.loading.Store(false)
	pending, order := t.pending, t.pendOrder
	t.pending, t.pendOrder = nil, nil
	t.pendMu.Unlock()
	var first error
	for _, k := range order {
		if err := pending[k](ctx); err != nil && first == nil {
			first = fmt.Errorf("judging again %s after the record's load: %w", k, err)
		}
	}
	return len(order), first
}

// RecordLoading reports whether the record from before the start is still
// being loaded.
func (r *Responder) RecordLoading() bool { return r.traffic.loading.Load() }

// RecordLoaded returns how many events from before the start the load
// showed so far.
func (r *Responder) RecordLoaded() uint64 { return r.traffic.loaded.Load() }

// recordLoading returns, while the record loads, why the responder cannot
// tell yet whether principals with good history use target, or "".
func (r *Responder) recordLoading(target string) string {
	if !r.traffic.loading.Load() {
		return ""
	}
	r.stats.HeldBack.Add(1)
	return fmt.Sprintf("the responder is still loading its record of the requests before its start (%d events so far), so it cannot tell yet whether principals with good history use %s",
		r.traffic.loaded.Load(), target)
}

// deferToRecord holds the group decision d of b back while the record
// loads, and queues rejudge (under key: one per group target) to run when
// the load ends. It reports whether it did; when the load has ended it
// does nothing and the caller judges with the whole record. The held-back
// action's id is its own, so that the decision made when the load ends is
// recorded too.
func (r *Responder) deferToRecord(d *Decision, b groupBlock, key string, rejudge func(context.Context) error) bool {
	t := &r.traffic
	t.pendMu.Lock()
	defer t.pendMu.Unlock()
	if !t.loading.Load() {
		return false
	}
	why := fmt.Sprintf("%s not blocked yet: %s", b.noun, r.recordLoading(b.target.Value))
	if _, ok := t.pending[key]; ok || len(t.pending) < maxPending {
		if t.pending == nil {
			t.pending = map[string]func(context.Context) error{}
		}
		if _, ok := t.pending[key]; !ok {
			t.pendOrder = append(t.pendOrder, key)
		}
		t.pending[key] = rejudge // the latest anomaly's
		why += "; judged again when the load ends"
	} else {
		why += fmt.Sprintf("; more than %d groups wait for the load: judged again at the next block", maxPending)
	}
	holdBack(d, why)
	d.ID = event.HashID(d.Trigger, "record-loading", d.ID)
	return true
}
