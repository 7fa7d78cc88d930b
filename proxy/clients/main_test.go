package clients

import (
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/apiguard/apiguard/event"
)

// TestMain fails the package if a test leaves a goroutine running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// collector keeps the events a proxy emits.
type collector struct {
	mu  sync.Mutex
	evs []*event.RequestEvent
}

func (c *collector) Emit(ev *event.RequestEvent) {
	c.mu.Lock()
	c.evs = append(c.evs, ev)
	c.mu.Unlock()
}

func (c *collector) last(t *testing.T) *event.RequestEvent {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.evs) == 0 {
		t.Fatal("no event emitted")
	}
	return c.evs[len(c.evs)-1]
}
