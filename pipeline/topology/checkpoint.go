package topology

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline"
)

// Checkpoints is a pipeline.CheckpointStore in the JetStream object store
// APIGUARD_CHECKPOINTS: one object per partition, the sequence (8 bytes,
// big-endian) followed by the detector state. Objects are chunked, so a
// state of any size fits; every pipeline replica that may take a
// partition over reads the same object.
type Checkpoints struct{ obs jetstream.ObjectStore }

// EnsureCheckpoints declares (idempotently) the checkpoint object store.
func EnsureCheckpoints(ctx context.Context, js jetstream.JetStream, cfg Config) (*Checkpoints, error) {
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      event.BucketCheckpoints,
		Description: "apiguard detector checkpoints, one per partition",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("declaring object store %s: %w", event.BucketCheckpoints, err)
	}
	return &Checkpoints{obs: obs}, nil
}

func checkpointName(partition int) string { return fmt.Sprintf("partition-%d", partition) }

// Load implements pipeline.CheckpointStore.
func (c *Checkpoints) Load(ctx context.Context, partition int) (pipeline.Checkpoint, bool, error) {
	b, err := c.obs.GetBytes(ctx, checkpointName(partition))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return pipeline.Checkpoint{}, false, nil
	}
	if err != nil {
		return pipeline.Checkpoint{}, false, fmt.Errorf("loading checkpoint of partition %d: %w", partition, err)
	}
	if len(b) < 8 {
		return pipeline.Checkpoint{}, false, fmt.Errorf("loading checkpoint of partition %d: %d bytes, too short for a sequence", partition, len(b))
	}
	return pipeline.Checkpoint{Sequence: binary.BigEndian.Uint64(b), State: b[8:]}, true, nil
}

// Save implements pipeline.CheckpointStore.
func (c *Checkpoints) Save(ctx context.Context, partition int, cp pipeline.Checkpoint) error {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(cp.State)), cp.Sequence)
	if _, err := c.obs.PutBytes(ctx, checkpointName(partition), append(b, cp.State...)); err != nil {
		return fmt.Errorf("saving checkpoint of partition %d at sequence %d: %w", partition, cp.Sequence, err)
	}
	return nil
}

// Clear deletes every partition's checkpoint, so that the pipelines that
// start next learn afresh, and returns how many it deleted. The demo uses
// it: a new demo must not inherit the detector state of an earlier one.
func (c *Checkpoints) Clear(ctx context.Context) (int, error) {
	infos, err := c.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing checkpoints: %w", err)
	}
	n := 0
	for _, o := range infos {
		if err := c.obs.Delete(ctx, o.Name); err != nil {
			return n, fmt.Errorf("deleting checkpoint %s: %w", o.Name, err)
		}
		n++
	}
	return n, nil
}

var _ pipeline.CheckpointStore = (*Checkpoints)(nil)
