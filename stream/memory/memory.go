// Package memory is an in-process stream.Bus: topics are slices of records
// held in memory, consumer groups keep committed offsets per partition. It is
// for tests and benchmarks of the stages around the bus; it keeps nothing
// across a restart and gives no durability.
package memory

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// Bus is an in-memory stream.Bus. The zero value is not usable; call New.
type Bus struct {
	mu     sync.Mutex
	cond   *sync.Cond
	topics map[string]*topic
	groups map[string]map[string][]int64 // group → topic → committed offset per partition
	closed bool
	seed   maphash.Seed
	rr     uint32

	// DefaultPartitions is used for topics produced to before EnsureTopics.
	DefaultPartitions int32
	// Discard, when set, makes Produce acknowledge without keeping records
	// (for benchmarks of the producing side).
	Discard bool
	// Fail, when set, is returned by Produce and Ping (to test error paths).
	Fail error
}

type topic struct {
	spec  stream.TopicSpec
	parts [][]*stream.Record
}

// New returns an empty bus.
func New() *Bus {
	b := &Bus{
		topics:            map[string]*topic{},
		groups:            map[string]map[string][]int64{},
		seed:              maphash.MakeSeed(),
		DefaultPartitions: 1,
	}
	b.cond = sync.NewCond(&b.mu)
	return b
}

var _ stream.Bus = (*Bus)(nil)

func (b *Bus) topicLocked(name string) *topic {
	t := b.topics[name]
	if t == nil {
		t = &topic{spec: stream.TopicSpec{Name: name, Partitions: b.DefaultPartitions}}
		t.parts = make([][]*stream.Record, t.spec.Partitions)
		b.topics[name] = t
	}
	return t
}

// EnsureTopics creates the topics that do not exist yet.
func (b *Bus) EnsureTopics(_ context.Context, specs ...stream.TopicSpec) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range specs {
		if _, ok := b.topics[s.Name]; ok {
			continue
		}
		if s.Partitions <= 0 {
			s.Partitions = 1
		}
		b.topics[s.Name] = &topic{spec: s, parts: make([][]*stream.Record, s.Partitions)}
	}
	return nil
}

// Partitions returns the partition count of topic, 0 if it does not exist.
func (b *Bus) Partitions(name string) int32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t := b.topics[name]; t != nil {
		return t.spec.Partitions
	}
	return 0
}

// Produce appends copies of recs to their topics.
func (b *Bus) Produce(ctx context.Context, recs ...*stream.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return stream.ErrClosed
	}
	if b.Fail != nil {
		return b.Fail
	}
	if b.Discard {
		return nil
	}
	now := time.Now()
	for _, r := range recs {
		t := b.topicLocked(r.Topic)
		if max := t.spec.MaxRecordBytes; max > 0 && len(r.Value)+len(r.Key) > int(max) {
			return fmt.Errorf("%w: %d bytes > %d", stream.ErrRecordTooLarge, len(r.Value)+len(r.Key), max)
		}
		p := r.Partition
		switch {
		case p >= 0:
			if p >= t.spec.Partitions {
				return fmt.Errorf("topic %s has no partition %d", r.Topic, p)
			}
		case len(r.Key) > 0:
			p = int32(maphash.Bytes(b.seed, r.Key) % uint64(t.spec.Partitions))
		default:
			b.rr++
			p = int32(b.rr % uint32(t.spec.Partitions))
		}
		c := &stream.Record{
			Topic:     r.Topic,
			Partition: p,
			Offset:    int64(len(t.parts[p])),
			Key:       append([]byte(nil), r.Key...),
			Value:     append([]byte(nil), r.Value...),
			Headers:   cloneHeaders(r.Headers),
			Timestamp: r.Timestamp,
		}
		if c.Timestamp.IsZero() {
			c.Timestamp = now
		}
		t.parts[p] = append(t.parts[p], c)
	}
	b.cond.Broadcast()
	return nil
}

func cloneHeaders(hs []stream.Header) []stream.Header {
	if hs == nil {
		return nil
	}
	out := make([]stream.Header, len(hs))
	for i, h := range hs {
		out[i] = stream.Header{Key: h.Key, Value: append([]byte(nil), h.Value...)}
	}
	return out
}

// Records returns a snapshot of every record in topic, partition by
// partition.
func (b *Bus) Records(name string) []*stream.Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*stream.Record
	if t := b.topics[name]; t != nil {
		for _, p := range t.parts {
			out = append(out, p...)
		}
	}
	return out
}

// Ping fails only when Fail is set or the bus is closed.
func (b *Bus) Ping(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return stream.ErrClosed
	}
	return b.Fail
}

// Close wakes every consumer and makes further calls fail.
func (b *Bus) Close() error {
	b.mu.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	return nil
}

// Consume joins a group. Members of one group do not share partitions
// fairly here: every member reads every partition from the group's committed
// offsets, so tests should use one member per group.
func (b *Bus) Consume(cfg stream.ConsumerConfig) (stream.Consumer, error) {
	if cfg.Group == "" || len(cfg.Topics) == 0 {
		return nil, fmt.Errorf("memory bus: consumer needs a group and topics")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.groups[cfg.Group]
	if g == nil {
		g = map[string][]int64{}
		b.groups[cfg.Group] = g
	}
	c := &consumer{b: b, cfg: cfg, next: map[string][]int64{}}
	for _, name := range cfg.Topics {
		t := b.topicLocked(name)
		if g[name] == nil {
			g[name] = make([]int64, t.spec.Partitions)
			for p := range g[name] {
				g[name][p] = startOffset(t.parts[p], cfg.Start)
			}
		}
		c.next[name] = append([]int64(nil), g[name]...)
	}
	return c, nil
}

func startOffset(part []*stream.Record, s stream.Start) int64 {
	switch s.Kind {
	case stream.StartLatest:
		return int64(len(part))
	case stream.StartAtOffset:
		return min(s.Offset, int64(len(part)))
	case stream.StartAtTime:
		for i, r := range part {
			if !r.Timestamp.Before(s.Time) {
				return int64(i)
			}
		}
		return int64(len(part))
	}
	return 0
}

type consumer struct {
	b      *Bus
	cfg    stream.ConsumerConfig
	next   map[string][]int64
	closed bool
}

func (c *consumer) Poll(ctx context.Context) ([]*stream.Record, error) {
	max := c.cfg.MaxPollRecords
	if max <= 0 {
		max = 500
	}
	stop := context.AfterFunc(ctx, func() {
		c.b.mu.Lock()
		c.b.cond.Broadcast()
		c.b.mu.Unlock()
	})
	defer stop()
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	for {
		if c.closed || c.b.closed {
			return nil, stream.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var out []*stream.Record
		for _, name := range c.cfg.Topics {
			t := c.b.topics[name]
			for p, next := range c.next[name] {
				for next < int64(len(t.parts[p])) && len(out) < max {
					r := *t.parts[p][next]
					out = append(out, &r)
					next++
				}
				c.next[name][p] = next
			}
		}
		if len(out) > 0 {
			return out, nil
		}
		c.b.cond.Wait()
	}
}

func (c *consumer) Commit(_ context.Context, recs ...*stream.Record) error {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	g := c.b.groups[c.cfg.Group]
	for _, r := range recs {
		offs := g[r.Topic]
		if offs == nil || int(r.Partition) >= len(offs) {
			return fmt.Errorf("memory bus: commit of a record from %s/%d not consumed by group %s", r.Topic, r.Partition, c.cfg.Group)
		}
		if r.Offset+1 > offs[r.Partition] {
			offs[r.Partition] = r.Offset + 1
		}
	}
	return nil
}

func (c *consumer) Lag(context.Context) (int64, error) {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	var lag int64
	g := c.b.groups[c.cfg.Group]
	for _, name := range c.cfg.Topics {
		t := c.b.topics[name]
		for p, off := range g[name] {
			lag += int64(len(t.parts[p])) - off
		}
	}
	return lag, nil
}

func (c *consumer) Close() error {
	c.b.mu.Lock()
	c.closed = true
	c.b.cond.Broadcast()
	c.b.mu.Unlock()
	return nil
}
