package clickhouse_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

// TestReadEvents stores events, then reads a time range of them back, in
// event-time order, each once, as the proxy recorded them (but for what
// the table does not keep), and filtered by API and principal.
func TestReadEvents(t *testing.T) {
	c := migrated(t)
	w := clickhouse.NewWriter(c)
	t0 := time.Date(2026, 11, 23, 23, 59, 59, 0, time.UTC) // the range spans two days
	var evs []*event.RequestEvent
	for i := range 10 {
		ev := fullEvent(9-i, t0.Add(time.Duration(9-i)*100*time.Millisecond)) // stored newest first
		if i == 3 {
			ev.Api, ev.ApiKeyId = "POST /login", "key-2"
		}
		evs = append(evs, ev)
	}
	for range 2 { // twice: the table may hold a duplicate until it merges
		if _, err := w.Events().Store(context.Background(), encode(t, toMessages(evs)...), false); err != nil {
			t.Fatal(err)
		}
	}
	read := func(q clickhouse.EventQuery) []*event.RequestEvent {
		t.Helper()
		var out []*event.RequestEvent
		if err := c.ReadEvents(context.Background(), q, func(ev *event.RequestEvent) error {
			out = append(out, ev)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	since := time.Unix(0, evs[8].TimeUnixNano) // the second oldest
	got := read(clickhouse.EventQuery{Since: since, Until: since.Add(time.Hour)})
	if len(got) != 9 {
		t.Fatalf("%d events, want 9", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].TimeUnixNano <= got[i-1].TimeUnixNano {
			t.Fatalf("events out of order at %d", i)
		}
	}
	want := proto.Clone(evs[0]).(*event.RequestEvent) // the newest: fullEvent(9)
	if g := got[len(got)-1]; !proto.Equal(g, want) {
		t.Errorf("read back\n got %v\nwant %v", g, want)
	}
	if n := len(read(clickhouse.EventQuery{Since: since, API: "POST /login"})); n != 1 {
		t.Errorf("API filter: %d events, want 1", n)
	}
	if n := len(read(clickhouse.EventQuery{Since: t0, PrincipalKind: event.KindKey, Principal: "key-2"})); n != 1 {
		t.Errorf("principal filter: %d events, want 1", n)
	}
}

func toMessages(evs []*event.RequestEvent) []event.Message {
	out := make([]event.Message, len(evs))
	for i, ev := range evs {
		out[i] = ev
	}
	return out
}
