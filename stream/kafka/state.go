package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/stream"
)

// A state store is a compacted topic of one partition. A value is written
// as chunks of at most stateChunk bytes, keyed "key\x00generation\x00i",
// then a manifest keyed "key" that names the generation, the chunk count,
// the length and a CRC-32C of the value; the chunks of the generation it
// replaces are deleted (tombstones) after it. A crash part way leaves the
// previous manifest and its chunks in place: Get reads either the old
// value or the new one, whole. Compaction keeps the topic at about the
// size of the live values.
const (
	stateChunk    = 512 << 10
	manifestMagic = "SLST1"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type stateStore struct {
	b     *Bus
	cl    *kgo.Client // produces (Bus.stateClient)
	topic string

	mu   sync.Mutex
	last map[string]manifest // the manifest last written or read, per key
}

var _ stream.StatefulBus = (*Bus)(nil)

// StateStore opens the state store called name: the compacted topic name,
// created if needed with Config.ReplicationFactor replicas.
func (b *Bus) StateStore(ctx context.Context, name string) (stream.StateStore, error) {
	if err := b.EnsureTopics(ctx, stream.TopicSpec{Name: name, Partitions: 1, Compact: true}); err != nil {
		return nil, err
	}
	cl, err := b.stateClient()
	if err != nil {
		return nil, err
	}
	return &stateStore{b: b, cl: cl, topic: name, last: map[string]manifest{}}, nil
}

// stateClient is the client the state stores produce with: the bus's own
// when it does not compress, else one that does not (Bus.stateCl).
func (b *Bus) stateClient() (*kgo.Client, error) {
	b.stateOnce.Do(func() {
		if c, _ := b.cfg.compressor(); c == nil {
			return
		}
		cfg := b.cfg
		cfg.Compression = "none"
		b.stateCl, b.stateErr = kgo.NewClient(append(cfg.clientOpts(cfg.ClientID+"-state-producer"), cfg.producerOpts()...)...)
		if b.stateErr != nil {
			b.stateErr = fmt.Errorf("kafka: state client: %w", b.stateErr)
		}
	})
	if b.stateCl == nil {
		return b.cl, b.stateErr
	}
	return b.stateCl, b.stateErr
}

func chunkKey(key string, gen uint64, i int) []byte {
	k := append([]byte(key), 0)
	k = binary.BigEndian.AppendUint64(k, gen)
	k = append(k, 0)
	return binary.BigEndian.AppendUint32(k, uint32(i))
}

type manifest struct {
	gen    uint64
	chunks int
	size   int
	crc    uint32
}

func (m manifest) encode() []byte {
	b := []byte(manifestMagic)
	b = binary.AppendUvarint(b, m.gen)
	b = binary.AppendUvarint(b, uint64(m.chunks))
	b = binary.AppendUvarint(b, uint64(m.size))
	return binary.BigEndian.AppendUint32(b, m.crc)
}

func decodeManifest(v []byte) (manifest, error) {
	var m manifest
	rest, ok := bytes.CutPrefix(v, []byte(manifestMagic))
	if !ok {
		return m, errors.New("not a state manifest")
	}
	var vals [3]uint64
	for i := range vals {
		x, n := binary.Uvarint(rest)
		if n <= 0 {
			return m, errors.New("truncated state manifest")
		}
		vals[i], rest = x, rest[n:]
	}
	if len(rest) != 4 || vals[1] > 1<<20 || vals[2] > 1<<40 {
		return m, errors.New("malformed state manifest")
	}
	return manifest{gen: vals[0], chunks: int(vals[1]), size: int(vals[2]), crc: binary.BigEndian.Uint32(rest)}, nil
}

func (s *stateStore) Put(ctx context.Context, key string, value []byte) error {
	m := manifest{gen: rand.Uint64(), size: len(value), crc: crc32.Checksum(value, castagnoli)}
	var recs []*stream.Record
	for off := 0; off < len(value) || (off == 0 && len(value) == 0); off += stateChunk {
		end := min(off+stateChunk, len(value))
		recs = append(recs, &stream.Record{Topic: s.topic, Partition: 0, Key: chunkKey(key, m.gen, m.chunks), Value: value[off:end:end]})
		m.chunks++
		if len(value) == 0 {
			break
		}
	}
	recs = append(recs, &stream.Record{Topic: s.topic, Partition: 0, Key: []byte(key), Value: m.encode()})
	if err := s.produce(ctx, recs); err != nil {
		return fmt.Errorf("kafka: state %s: put %s: %w", s.topic, key, err)
	}
	s.mu.Lock()
	prev, had := s.last[key]
	s.last[key] = m
	s.mu.Unlock()
	if had {
		s.drop(ctx, key, prev)
	}
	return nil
}

// produce is Bus.Produce with the state's client.
func (s *stateStore) produce(ctx context.Context, recs []*stream.Record) error {
	if s.b.closed.Load() {
		return fmt.Errorf("kafka: produce: %w", stream.ErrClosed)
	}
	return s.b.produce(ctx, s.cl, recs)
}

// drop deletes the chunks of the generation of key that m names. A
// failure only leaves them until compaction has nothing newer to keep:
// they cost space, never correctness.
func (s *stateStore) drop(ctx context.Context, key string, m manifest) {
	recs := make([]*stream.Record, m.chunks)
	for i := range recs {
		recs[i] = &stream.Record{Topic: s.topic, Partition: 0, Key: chunkKey(key, m.gen, i)}
	}
	if err := s.produce(ctx, recs); err != nil {
		s.b.log.Debug("kafka: state: deleting a replaced value", "topic", s.topic, "key", key, "err", err)
	}
}

// Get reads the store's partition from its start to its end and returns
// the value of key's last manifest.
func (s *stateStore) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := s.b.bound(ctx)
	defer cancel()
	ends, err := s.b.admin.ListEndOffsets(ctx, s.topic)
	if err != nil {
		return nil, wrapErr("state "+s.topic+": end offsets", err)
	}
	end, ok := ends.Lookup(s.topic, 0)
	if !ok || end.Err != nil {
		return nil, wrapErr("state "+s.topic+": end offset", errors.Join(errors.New("partition 0 not found"), end.Err))
	}
	if end.Offset == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(append(s.b.cfg.clientOpts(s.b.cfg.ClientID+"-state"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.topic: {0: kgo.NewOffset().AtStart()}}))...)
	if err != nil {
		return nil, fmt.Errorf("kafka: state %s: %w", s.topic, err)
	}
	defer cl.Close()
	prefix := append([]byte(key), 0)
	var (
		last   []byte
		chunks = map[string][]byte{}
	)
	for done := false; !done; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, wrapErr("state "+s.topic+": read", err)
		}
		for _, fe := range fs.Errors() {
			return nil, wrapErr("state "+s.topic+": read", fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			switch {
			case string(r.Key) == key:
				last = r.Value
			case bytes.HasPrefix(r.Key, prefix):
				if r.Value == nil {
					delete(chunks, string(r.Key))
				} else {
					chunks[string(r.Key)] = r.Value
				}
			}
			done = done || r.Offset >= end.Offset-1
		})
	}
	if last == nil {
		return nil, nil
	}
	m, err := decodeManifest(last)
	if err != nil {
		return nil, fmt.Errorf("kafka: state %s: key %s: %w", s.topic, key, err)
	}
	value := make([]byte, 0, m.size)
	for i := range m.chunks {
		c, ok := chunks[string(chunkKey(key, m.gen, i))]
		if !ok && m.size > 0 {
			return nil, fmt.Errorf("kafka: state %s: key %s: chunk %d of %d is missing", s.topic, key, i, m.chunks)
		}
		value = append(value, c...)
	}
	if len(value) != m.size || crc32.Checksum(value, castagnoli) != m.crc {
		return nil, fmt.Errorf("kafka: state %s: key %s: the value does not match its manifest", s.topic, key)
	}
	s.mu.Lock()
	s.last[key] = m
	s.mu.Unlock()
	return value, nil
}
