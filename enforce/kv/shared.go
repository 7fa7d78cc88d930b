package kv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
)

// SharedObject is the object of event.BucketEnforcementSnapshots that
// holds the latest complete snapshot of the enforcement bucket, in the
// form of enforce.Matcher.Save. Its metadata repeats the position it
// covers and when it was saved, so that a proxy can judge it without
// downloading it.
const SharedObject = "latest"

const (
	metaSource   = "source"
	metaRevision = "revision"
	metaSaved    = "saved"
)

// SharedPolicy says when a proxy replaces the shared snapshot: when the
// stored one is Changes or more revisions behind the proxy's state, or
// MaxAge old and behind it. A proxy checks every Interval, give or take
// half of it at random, so that proxies started together do not upload
// together.
type SharedPolicy struct {
	Changes  uint64
	MaxAge   time.Duration
	Interval time.Duration
}

// DefaultSharedPolicy replaces the shared snapshot 50,000 changes or 5
// minutes behind, checking every 30 seconds.
func DefaultSharedPolicy() SharedPolicy {
	return SharedPolicy{Changes: 50000, MaxAge: 5 * time.Minute, Interval: 30 * time.Second}
}

// sharedMeta is what the object's metadata says.
type sharedMeta struct {
	pos   enforce.Position
	saved time.Time
}

func readMeta(info *jetstream.ObjectInfo) (sharedMeta, error) {
	md := info.Metadata
	rev, err := strconv.ParseUint(md[metaRevision], 10, 64)
	if err != nil {
		return sharedMeta{}, fmt.Errorf("metadata %s %q: %w", metaRevision, md[metaRevision], err)
	}
	saved, err := time.Parse(time.RFC3339Nano, md[metaSaved])
	if err != nil {
		return sharedMeta{}, fmt.Errorf("metadata %s %q: %w", metaSaved, md[metaSaved], err)
	}
	return sharedMeta{pos: enforce.Position{Source: md[metaSource], Revision: rev}, saved: saved}, nil
}

// NeedsUpload reports whether a proxy holding the state at have, at now,
// replaces the stored snapshot (nil when there is none): when it is of
// another bucket, or behind have by p.Changes revisions, or behind and
// p.MaxAge old. A stored snapshot as new as have is never replaced.
func NeedsUpload(p SharedPolicy, stored *jetstream.ObjectInfo, have enforce.Position, now time.Time) bool {
	if stored == nil {
		return true
	}
	m, err := readMeta(stored)
	if err != nil || m.pos.Source != have.Source {
		return true
	}
	if have.Revision <= m.pos.Revision {
		return false
	}
	return have.Revision-m.pos.Revision >= p.Changes || now.Sub(m.saved) >= p.MaxAge
}

// FetchShared reads the shared snapshot for a proxy whose own state is at
// have (the zero Position when it has none). It returns the snapshot's
// entries, leaving out those expired at now, and false when the proxy is
// better off without it: there is none, it is not newer than have, or it
// cannot be used (damaged, of another bucket, ahead of the bucket, or
// holding more entries than the bucket has messages, so that the changes
// since its revision cannot all be read), which it logs with why.
func FetchShared(ctx context.Context, js jetstream.JetStream, bucket string, have enforce.Position, now time.Time, log *slog.Logger) (*enforce.Builder, enforce.SaveInfo, bool) {
	start := time.Now()
	ignore := func(why string, args ...any) (*enforce.Builder, enforce.SaveInfo, bool) {
		log.Warn("ignoring the shared enforcement snapshot: "+why, append(args, "object", event.BucketEnforcementSnapshots+"/"+SharedObject)...)
		return nil, enforce.SaveInfo{}, false
	}
	stream, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return ignore("cannot read the bucket's stream", "err", err)
	}
	sinfo := stream.CachedInfo()
	source := SourceOf(sinfo)
	obs, err := js.ObjectStore(ctx, event.BucketEnforcementSnapshots)
	if err != nil {
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			log.Info("no shared enforcement snapshot", "object_store", event.BucketEnforcementSnapshots)
			return nil, enforce.SaveInfo{}, false
		}
		return ignore("cannot open its object store", "err", err)
	}
	oinfo, err := obs.GetInfo(ctx, SharedObject)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		log.Info("no shared enforcement snapshot", "object_store", event.BucketEnforcementSnapshots)
		return nil, enforce.SaveInfo{}, false
	}
	if err != nil {
		return ignore("cannot read its description", "err", err)
	}
	if m, err := readMeta(oinfo); err == nil && m.pos.Source == have.Source && m.pos.Revision <= have.Revision {
		log.Info("the local enforcement snapshot is as new as the shared one", "revision", have.Revision, "shared_revision", m.pos.Revision)
		return nil, enforce.SaveInfo{}, false
	}
	data, err := obs.GetBytes(ctx, SharedObject)
	if err != nil {
		return ignore("cannot download it", "err", err)
	}
	b, info, err := enforce.Restore(data, now)
	switch {
	case err != nil:
		return ignore("it is damaged", "err", err)
	case info.Position.Source != source:
		return ignore("it is of another bucket", "snapshot_source", info.Position.Source, "bucket_source", source)
	case info.Position.Revision > sinfo.State.LastSeq:
		return ignore("it is ahead of the bucket", "snapshot_revision", info.Position.Revision, "bucket_revision", sinfo.State.LastSeq)
	case uint64(info.Entries) > sinfo.State.Msgs:
		return ignore("it holds more entries than the bucket has messages (purged?)", "snapshot_entries", info.Entries, "bucket_messages", sinfo.State.Msgs)
	case info.Position.Source == have.Source && info.Position.Revision <= have.Revision:
		log.Info("the local enforcement snapshot is as new as the shared one", "revision", have.Revision, "shared_revision", info.Position.Revision)
		return nil, enforce.SaveInfo{}, false
	}
	log.Info("shared enforcement snapshot read", "entries", b.Len(), "expired", info.Expired, "revision", info.Position.Revision,
		"saved", info.Saved.Format(time.RFC3339), "bytes", len(data), "took", time.Since(start).Round(time.Millisecond))
	return b, info, true
}

// SharedWriter keeps the shared snapshot fresh from a proxy's state: see
// SharedPolicy. Every complete snapshot is correct to start from (a proxy
// reads the changes since its revision), so when two proxies upload at
// once the last one stays and nothing is lost.
type SharedWriter struct {
	js     jetstream.JetStream
	m      *enforce.Matcher
	w      *Watcher
	policy SharedPolicy
	log    *slog.Logger
}

// NewSharedWriter returns a SharedWriter of m's state at the positions w
// reports.
func NewSharedWriter(js jetstream.JetStream, m *enforce.Matcher, w *Watcher, p SharedPolicy, log *slog.Logger) *SharedWriter {
	return &SharedWriter{js: js, m: m, w: w, policy: p, log: log}
}

// Run checks the shared snapshot every policy Interval (with jitter) and
// replaces it when it is due, until ctx ends. Errors are logged: proxies
// without a shared snapshot load the whole bucket.
func (s *SharedWriter) Run(ctx context.Context) error {
	for {
		wait := s.policy.Interval/2 + rand.N(s.policy.Interval+1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if _, err := s.Check(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("updating the shared enforcement snapshot", "err", err)
		}
	}
}

// Check uploads the proxy's state if it is complete and the shared
// snapshot is due for replacement, and reports whether it did.
func (s *SharedWriter) Check(ctx context.Context) (bool, error) {
	p, ok := s.w.Position()
	if !ok {
		return false, nil
	}
	obs, err := s.js.ObjectStore(ctx, event.BucketEnforcementSnapshots)
	if err != nil {
		return false, fmt.Errorf("opening object store %s: %w", event.BucketEnforcementSnapshots, err)
	}
	stored, err := obs.GetInfo(ctx, SharedObject)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		stored, err = nil, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s/%s: %w", event.BucketEnforcementSnapshots, SharedObject, err)
	}
	now := time.Now()
	if !NeedsUpload(s.policy, stored, p, now) {
		return false, nil
	}
	start := time.Now()
	info, err := s.upload(ctx, obs, p, now)
	if err != nil {
		return false, err
	}
	s.log.Info("shared enforcement snapshot uploaded", "entries", s.m.Len(), "revision", p.Revision, "bytes", info.Size,
		"took", time.Since(start).Round(time.Millisecond))
	return true, nil
}

// upload streams the matcher's state at p into the object.
func (s *SharedWriter) upload(ctx context.Context, obs jetstream.ObjectStore, p enforce.Position, now time.Time) (*jetstream.ObjectInfo, error) {
	pr, pw := io.Pipe()
	saved := make(chan error, 1)
	go func() {
		err := s.m.Save(pw, p, now)
		pw.CloseWithError(err)
		saved <- err
	}()
	meta := jetstream.ObjectMeta{Name: SharedObject, Description: "enforcement state at " + p.Source + " revision " + strconv.FormatUint(p.Revision, 10),
		Metadata: map[string]string{metaSource: p.Source, metaRevision: strconv.FormatUint(p.Revision, 10), metaSaved: now.UTC().Format(time.RFC3339Nano)}}
	info, err := obs.Put(ctx, meta, pr)
	// Unblocks the writer if Put stopped reading early.
	pr.CloseWithError(io.ErrClosedPipe)
	if serr := <-saved; err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("uploading %s/%s at revision %d: %w", event.BucketEnforcementSnapshots, SharedObject, p.Revision, err)
	}
	return info, nil
}
