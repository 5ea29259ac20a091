package nats

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/stream"
)

var _ stream.StatefulBus = (*Bus)(nil)

// invalidBucket matches what a JetStream bucket name may not hold.
var invalidBucket = regexp.MustCompile(`[^a-zA-Z0-9_-]`)

// StateStore opens the state store called name: a JetStream object store
// (bucket name with every character other than letters, digits, "_" and
// "-" turned into "_"), which chunks values of any size and replaces a
// value whole: a reader sees the old one or the new one.
func (b *Bus) StateStore(ctx context.Context, name string) (stream.StateStore, error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("nats: state store: %w", stream.ErrClosed)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	bucket := invalidBucket.ReplaceAllString(name, "_")
	os, err := b.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      bucket,
		Description: "sluice state store " + name,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
	})
	if err != nil {
		return nil, wrapErr("state store "+name, err)
	}
	return &stateStore{b: b, name: name, os: os}, nil
}

type stateStore struct {
	b    *Bus
	name string
	os   jetstream.ObjectStore
}

func (s *stateStore) Put(ctx context.Context, key string, value []byte) error {
	if _, err := s.os.PutBytes(ctx, key, value); err != nil {
		return wrapErr(fmt.Sprintf("state %s: put %s", s.name, key), err)
	}
	return nil
}

func (s *stateStore) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := s.os.GetBytes(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, wrapErr(fmt.Sprintf("state %s: get %s", s.name, key), err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}
