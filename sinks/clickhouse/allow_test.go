package clickhouse_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

// TestAllowActionsStored: the audit rows of `apiguard allow` and `unallow`
// fit the actions table's kind column (an unknown Enum8 value would stall
// the actions loader).
func TestAllowActionsStored(t *testing.T) {
	c := migrated(t)
	ctx := context.Background()
	ts := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	var msgs []event.Message
	for i, k := range []event.ActionKind{event.ActionKind_ACTION_ALLOW, event.ActionKind_ACTION_UNALLOW} {
		msgs = append(msgs, &event.Action{Schema: event.SchemaVersion, Id: event.HashID(ts, k.String()), TimeUnixNano: ts.UnixNano() + int64(i),
			Kind: k, Target: &event.Principal{Kind: "fp", Value: "fp:0123456789abcdef"}, Reason: "common browser", Actor: "operator:ann"})
	}
	if _, err := clickhouse.NewWriter(c).Actions().Store(ctx, encode(t, msgs...), true); err != nil {
		t.Fatal(err)
	}
	rows, err := c.Conn().Query(ctx, "SELECT toString(kind) FROM "+c.Database()+".actions ORDER BY time_unix_nano")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var kinds []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, k)
	}
	if !slices.Equal(kinds, []string{"allow", "unallow"}) {
		t.Errorf("stored kinds %v, want [allow unallow]", kinds)
	}
}
