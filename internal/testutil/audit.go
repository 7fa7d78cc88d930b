package testutil

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
)

// AuditActions returns every action on the audit stream
// (event.StreamActions), oldest first, read with an ordered consumer that
// disturbs no other; it fails the test if the stream cannot be read or
// holds an undecodable action.
func AuditActions(t testing.TB, js jetstream.JetStream) []*event.Action {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, event.StreamActions, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("reading the audit stream: %v", err)
	}
	var out []*event.Action
	for {
		batch, err := c.FetchNoWait(100)
		if err != nil {
			t.Fatalf("reading the audit stream: %v", err)
		}
		n := 0
		for m := range batch.Messages() {
			var a event.Action
			if err := event.UnmarshalAction(m.Data(), &a); err != nil {
				t.Fatalf("audit stream: %v", err)
			}
			out = append(out, &a)
			n++
		}
		if n == 0 {
			return out
		}
	}
}
