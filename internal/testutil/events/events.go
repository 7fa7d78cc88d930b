// Package events provides Collector, the event sink the proxy's tests hand
// to a proxy in place of the emitter. It is imported by tests only, and
// kept apart from testutil so that those tests do not build a NATS server.
package events

import (
	"sync"
	"testing"

	"github.com/apiguard/apiguard/event"
)

// Collector keeps the events a proxy emits, in order; it is safe for
// concurrent use. Its zero value is ready.
type Collector struct {
	mu  sync.Mutex
	evs []*event.RequestEvent
}

// Emit implements the proxy's Emitter.
func (c *Collector) Emit(ev *event.RequestEvent) {
	c.mu.Lock()
	c.evs = append(c.evs, ev)
	c.mu.Unlock()
}

// Len returns how many events were emitted.
func (c *Collector) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.evs)
}

// Last returns the latest event, and fails t when there is none.
func (c *Collector) Last(t testing.TB) *event.RequestEvent {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.evs) == 0 {
		t.Fatal("no event emitted")
	}
	return c.evs[len(c.evs)-1]
}
