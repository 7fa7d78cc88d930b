package topology_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// TestReadEvents reads the event stream from a start time to its end,
// whole and by one partition's subject, and stops when asked.
func TestReadEvents(t *testing.T) {
	js, _ := testutil.Topology(t)
	ctx := context.Background()
	publish := func(from, n int) {
		for i := from; i < from+n; i++ {
			if _, err := js.Publish(ctx, fmt.Sprintf(event.SubjectEventsT, i%2), []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(0, 10)
	time.Sleep(20 * time.Millisecond) // stored times: the first 10 before mid, the rest after
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	publish(10, 2500)
	read := func(subject string, since time.Time, stopAt int) (seqs []uint64, data []byte, progress [][2]uint64) {
		t.Helper()
		err := topology.ReadEvents(ctx, js, subject, since, func(seq uint64, stored time.Time, d []byte) error {
			if stored.Before(since) {
				t.Errorf("message %d stored at %s, before %s", seq, stored, since)
			}
			seqs = append(seqs, seq)
			data = append(data, d...)
			if len(seqs) == stopAt {
				return topology.ErrStop
			}
			return nil
		}, func(n, total uint64) { progress = append(progress, [2]uint64{n, total}) })
		if err != nil {
			t.Fatal(err)
		}
		return seqs, data, progress
	}
	seqs, data, progress := read(event.SubjectEvents, mid, 0)
	if len(seqs) != 2500 || seqs[0] != 11 || data[0] != 10 {
		t.Fatalf("read %d messages from seq %v, want 2500 from 11", len(seqs), seqs[:min(1, len(seqs))])
	}
	if last := progress[len(progress)-1]; last != [2]uint64{2500, 2500} || len(progress) != 3 {
		t.Errorf("progress %v, want at 1000, 2000 and the end", progress)
	}
	seqs, _, _ = read(fmt.Sprintf(event.SubjectEventsT, 1), time.Time{}, 0)
	if len(seqs) != 1255 || seqs[0] != 2 {
		t.Errorf("partition 1: %d messages from %v, want 1255 from seq 2", len(seqs), seqs[:1])
	}
	if seqs, _, _ = read(event.SubjectEvents, time.Time{}, 7); len(seqs) != 7 {
		t.Errorf("stopped after %d, want 7", len(seqs))
	}
	if seqs, _, _ = read(event.SubjectEvents, time.Now().Add(time.Hour), 0); len(seqs) != 0 {
		t.Errorf("read %d from the future", len(seqs))
	}
	boom := errors.New("boom")
	if err := topology.ReadEvents(ctx, js, event.SubjectEvents, time.Time{}, func(uint64, time.Time, []byte) error { return boom }, nil); !errors.Is(err, boom) {
		t.Errorf("err %v, want fn's", err)
	}
}
