package pipeline

import (
	"context"
	"time"

	"github.com/apiguard/apiguard/detectors"
)

// Stateful is a Detector whose state can be checkpointed. UnmarshalState
// refuses a checkpoint it cannot use (another format, other windows),
// leaving the detector as it was.
type Stateful interface {
	MarshalState() ([]byte, error)
	UnmarshalState([]byte) error
}

// Checkpoint is a partition's detector state and the stream sequence it
// covers: every event of the partition up to Sequence, and none after.
type Checkpoint struct {
	Sequence uint64
	State    []byte
}

// CheckpointStore keeps the last checkpoint of each partition.
type CheckpointStore interface {
	// Load returns the partition's checkpoint, or ok false if it has none.
	Load(ctx context.Context, partition int) (c Checkpoint, ok bool, err error)
	Save(ctx context.Context, partition int, c Checkpoint) error
}

// Rewinder is a Source that can deliver again from just after a sequence,
// so that events processed after the last checkpoint (and so lost with
// the process) are processed again. Events at or before the sequence
// that it delivers anyway are skipped by the worker.
type Rewinder interface {
	Rewind(ctx context.Context, after uint64) error
}

// SetCheckpoints makes each partition's worker restore its detector from
// store when it starts, resume the stream after the checkpoint, and save a
// checkpoint every interval of wall time and when it stops. Call it before
// Run. Anomalies of the events processed again after a restart are
// delivered again, with the same ids (detectors are deterministic), so
// sinks keyed by anomaly id keep one of each.
func (p *Pipeline) SetCheckpoints(store CheckpointStore, every time.Duration) {
	p.checkpoints, p.checkpointEvery = store, every
}

// restore loads the worker's checkpoint into its detector and rewinds the
// source to just after it. A checkpoint the detector refuses is logged and
// ignored: the partition starts fresh from where its consumer stands.
func (w *worker) restore(ctx context.Context) error {
	st, ok := w.det.(Stateful)
	if w.p.checkpoints == nil || !ok {
		return nil
	}
	c, found, err := w.p.checkpoints.Load(ctx, w.part)
	if err != nil {
		return err
	}
	if !found {
		w.log.Info("no detector checkpoint: starting fresh")
		return nil
	}
	if err := st.UnmarshalState(c.State); err != nil {
		w.log.Warn("ignoring detector checkpoint", "sequence", c.Sequence, "err", err)
		return nil
	}
	w.done, w.complete, w.saved = c.Sequence, c.Sequence, c.Sequence
	if r, ok := w.src.(Rewinder); ok {
		if err := r.Rewind(ctx, c.Sequence); err != nil {
			return err
		}
	}
	w.log.Info("restored detector checkpoint", "sequence", c.Sequence, "bytes", len(c.State))
	return nil
}

// checkpoint saves the detector's state if the interval has passed, or
// always when final. Failures are logged and counted: they cost a longer
// replay after a restart, never an event.
func (w *worker) checkpoint(final bool) {
	st, ok := w.det.(Stateful)
	// A message whose anomalies were not all delivered (the worker was
	// stopped mid-way) must be handled again after a restart: its state
	// is not checkpointed.
	if w.p.checkpoints == nil || !ok || w.done == 0 || w.done == w.saved || w.complete != w.done {
		return
	}
	if !final && time.Since(w.savedAt) < w.p.checkpointEvery {
		return
	}
	state, err := st.MarshalState()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = w.p.checkpoints.Save(ctx, w.part, Checkpoint{Sequence: w.done, State: state})
		cancel()
	}
	// The interval runs from the end of a save, so that a slow save
	// cannot crowd out the processing.
	w.savedAt = time.Now()
	if err != nil {
		w.p.stats.CheckpointErrors.Add(1)
		w.log.Warn("saving detector checkpoint", "sequence", w.done, "err", err)
		return
	}
	w.saved = w.done
	w.p.stats.Checkpoints.Add(1)
}

// The detection engine is what the pipeline runs: it must keep
// checkpointing and reporting baselines.
var (
	_ Detector    = (*detectors.Engine)(nil)
	_ Stateful    = (*detectors.Engine)(nil)
	_ Snapshotter = (*detectors.Engine)(nil)
)
