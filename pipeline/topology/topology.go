// Package topology declares apiguard's JetStream topology (the event,
// anomaly and action streams and the enforcement bucket), creates it
// idempotently, and adapts JetStream consumers and publishers to the
// pipeline's Source and Sink interfaces.
package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
)

// Config sizes the streams. DefaultConfig gives values for one host.
type Config struct {
	// Partitions is the number of event subjects; the proxy and the pipeline must agree.
	Partitions int `yaml:"partitions"`
	// MaxAge and MaxBytes bound the event stream (it is also the capture buffer).
	MaxAge   time.Duration `yaml:"max_age"`
	MaxBytes int64         `yaml:"max_bytes"`
	// Duplicates is the window in which a re-published event id is stored once.
	Duplicates time.Duration `yaml:"duplicates"`
	// Replicas is the stream replication factor (1 for a single server).
	Replicas int `yaml:"replicas"`
	// CheckpointInterval is how often each partition's detector state is
	// checkpointed (also when the pipeline stops): after a crash, at most
	// this much traffic is processed again.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Partitions: 8, MaxAge: 72 * time.Hour, MaxBytes: 10 << 30, Duplicates: 10 * time.Minute, Replicas: 1,
		CheckpointInterval: 30 * time.Second}
}

// Validate reports the first bad field by its config key.
func (c Config) Validate() error {
	switch {
	case c.Partitions < 1 || c.Partitions > 1024:
		return fmt.Errorf("nats.partitions: %d, want 1..1024", c.Partitions)
	case c.CheckpointInterval < time.Second:
		return fmt.Errorf("nats.checkpoint_interval: %s, want at least 1s", c.CheckpointInterval)
	case c.MaxAge < time.Minute:
		return fmt.Errorf("nats.max_age: %s, want at least 1m", c.MaxAge)
	case c.MaxBytes < 1<<20:
		return fmt.Errorf("nats.max_bytes: %d, want at least 1 MiB", c.MaxBytes)
	case c.Duplicates < time.Second || c.Duplicates > c.MaxAge:
		return fmt.Errorf("nats.duplicates: %s, want 1s..max_age", c.Duplicates)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("nats.replicas: %d, want 1..5", c.Replicas)
	}
	return nil
}

// Ensure creates or updates the streams, the enforcement bucket and its
// snapshots' object store, and returns the bucket. It is safe to call
// from every process at start.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.KeyValue, error) {
	streams := []jetstream.StreamConfig{{
		Name:        event.StreamEvents,
		Description: "apiguard request events, partitioned by principal",
		Subjects:    []string{event.SubjectEvents},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Duplicates:  cfg.Duplicates,
		Replicas:    cfg.Replicas,
		Discard:     jetstream.DiscardOld,
	}, {
		Name:        event.StreamAnomalies,
		Description: "apiguard anomalies",
		Subjects:    []string{event.SubjectAnomalies},
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.MaxAge,
		Duplicates:  cfg.Duplicates,
		Replicas:    cfg.Replicas,
	}, {
		Name:        event.StreamActions,
		Description: "apiguard actions: the audit trail",
		Subjects:    []string{event.SubjectActions},
		Storage:     jetstream.FileStorage,
		Duplicates:  cfg.Duplicates,
		Replicas:    cfg.Replicas,
	}}
	for _, sc := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("declaring stream %s: %w", sc.Name, err)
		}
	}
	kvc := jetstream.KeyValueConfig{
		Bucket:      event.BucketEnforcement,
		Description: "apiguard blocks, throttles and revocations",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		// Lets entries carry their own TTL; expiry leaves a marker that
		// watchers see as a deletion.
		LimitMarkerTTL: time.Minute,
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, kvc)
	if err != nil {
		return nil, fmt.Errorf("declaring bucket %s: %w", kvc.Bucket, err)
	}
	// The latest complete snapshot of the bucket, which proxies share.
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      event.BucketEnforcementSnapshots,
		Description: "apiguard enforcement state snapshots, for proxies that start",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("declaring object store %s: %w", event.BucketEnforcementSnapshots, err)
	}
	return kv, nil
}

// Bucket returns the enforcement bucket, which Ensure must have created.
func Bucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, event.BucketEnforcement)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("bucket %s does not exist: start the pipeline first, or run with a NATS that has it: %w", event.BucketEnforcement, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening bucket %s: %w", event.BucketEnforcement, err)
	}
	return kv, nil
}

// EventCount returns the number of messages in the event stream.
func EventCount(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	s, err := js.Stream(ctx, event.StreamEvents)
	if err != nil {
		return 0, fmt.Errorf("opening stream %s: %w", event.StreamEvents, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading stream %s: %w", event.StreamEvents, err)
	}
	return info.State.Msgs, nil
}
