// Package memory is an in-process stream.Bus: topics are slices of records
// held in memory, consumer groups keep committed offsets per partition. It is
// for tests and benchmarks of the stages around the bus; it keeps nothing
// across a restart and gives no durability.
//
// It keeps the bus contract as Kafka does (stream/bustest checks it):
// offsets number each partition from 0; a group's position in a partition
// moves only over records that were all committed, so a record never
// committed holds it; the members of a group share the partitions. A
// member takes part in the sharing from its first Poll (a member that only
// reads Lag takes nothing away from the others), and hands a partition to
// another member only inside Poll or Close, so that the records it holds
// stay its own until it polls again.
package memory

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// Bus is an in-memory stream.Bus. The zero value is not usable; call New.
type Bus struct {
	mu     sync.Mutex
	stores map[string]map[string][]byte // StateStore values by store and key
	cond   *sync.Cond                   // broadcast when records arrive, members change or anything closes
	topics map[string]*topic
	groups map[string]*group
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

// group is a consumer group: its positions per topic and the members
// that share the partitions.
type group struct {
	name      string
	positions map[string]*positions
	members   []*consumer // those that have polled, in the order of their first Poll
}

// positions are a group's state in one topic, per partition.
type positions struct {
	committed []int64              // every record before it is committed
	ahead     []map[int64]struct{} // committed records after a gap
	owner     []*consumer          // the member reading the partition; nil: none
}

// New returns an empty bus.
func New() *Bus {
	b := &Bus{
		topics:            map[string]*topic{},
		groups:            map[string]*group{},
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
	if b.closed {
		return stream.ErrClosed
	}
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

// Produce appends copies of recs to their topics. A record whose value,
// key and headers (Record.Overhead) exceed the topic's MaxRecordBytes
// fails with stream.ErrRecordTooLarge; the records before it are kept.
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
	defer b.cond.Broadcast()
	now := time.Now()
	for _, r := range recs {
		t := b.topicLocked(r.Topic)
		if max, size := t.spec.MaxRecordBytes, len(r.Value)+r.Overhead(); max > 0 && size > int(max) {
			return fmt.Errorf("memory bus: %w: %d bytes > %d", stream.ErrRecordTooLarge, size, max)
		}
		p := r.Partition
		switch {
		case p >= 0:
			if p >= t.spec.Partitions {
				return fmt.Errorf("memory bus: topic %s has no partition %d", r.Topic, p)
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

// GroupLag implements stream.GroupLagger: per partition of each topic, the
// group's committed position, the end, and the records between them (every
// record when the group has no position in the topic).
func (b *Bus) GroupLag(_ context.Context, group string, topics ...string) ([]stream.PartitionLag, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("memory: group lag: %w", stream.ErrClosed)
	}
	var out []stream.PartitionLag
	for _, name := range topics {
		t := b.topics[name]
		if t == nil {
			return nil, fmt.Errorf("memory: group lag: topic %s does not exist", name)
		}
		var pos *positions
		if g := b.groups[group]; g != nil {
			pos = g.positions[name]
		}
		for p, recs := range t.parts {
			l := stream.PartitionLag{Group: group, Topic: name, Partition: int32(p), Committed: -1, End: int64(len(recs)), Lag: int64(len(recs))}
			if pos != nil && p < len(pos.committed) {
				l.Committed = pos.committed[p]
				l.Lag = l.End - l.Committed
			}
			out = append(out, l)
		}
	}
	return out, nil
}

var _ stream.GroupLagger = (*Bus)(nil)

// Ping fails only when Fail is set or the bus is closed.
func (b *Bus) Ping(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return stream.ErrClosed
	}
	return b.Fail
}

// Close wakes every consumer and makes further calls fail with
// stream.ErrClosed.
func (b *Bus) Close() error {
	b.mu.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	return nil
}

// Consume joins a group. A group that has no position in a topic yet
// starts where cfg.Start says; later members resume from the group's
// committed positions.
func (b *Bus) Consume(cfg stream.ConsumerConfig) (stream.Consumer, error) {
	if cfg.Group == "" || len(cfg.Topics) == 0 {
		return nil, fmt.Errorf("memory bus: consumer needs a group and topics")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, stream.ErrClosed
	}
	g := b.groups[cfg.Group]
	if g == nil {
		g = &group{name: cfg.Group, positions: map[string]*positions{}}
		b.groups[cfg.Group] = g
	}
	c := &consumer{b: b, g: g, max: cfg.MaxPollRecords, maxBytes: cfg.MaxPollBytes, onRevoked: cfg.OnRevoked, topics: slices.Compact(slices.Sorted(slices.Values(cfg.Topics))), next: map[string][]int64{}}
	if c.max <= 0 {
		c.max = 500
	}
	for _, name := range c.topics {
		t := b.topicLocked(name)
		if g.positions[name] == nil {
			n := t.spec.Partitions
			pos := &positions{committed: make([]int64, n), ahead: make([]map[int64]struct{}, n), owner: make([]*consumer, n)}
			for p := range pos.committed {
				pos.committed[p] = startOffset(t.parts[p], cfg.Start)
			}
			g.positions[name] = pos
		}
		c.next[name] = make([]int64, t.spec.Partitions)
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
	b         *Bus
	g         *group
	max       int
	maxBytes  int // of the values of one Poll (at least one record); 0: no bound
	onRevoked func(string, []int32)
	topics    []string
	next      map[string][]int64 // per topic and partition: the next offset to read, where owned
	joined    bool               // in g.members
	closed    bool
}

// Poll returns records of the partitions the member owns, at most
// MaxPollRecords (default 500) and, with MaxPollBytes, values of at most
// that many bytes (but at least one record), waiting until there are some.
func (c *consumer) Poll(ctx context.Context) ([]*stream.Record, error) {
	stop := context.AfterFunc(ctx, func() {
		c.b.mu.Lock()
		c.b.cond.Broadcast()
		c.b.mu.Unlock()
	})
	defer stop()
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if !c.joined && !c.closed {
		c.joined = true
		c.g.members = append(c.g.members, c)
	}
	for {
		if c.closed || c.b.closed {
			return nil, stream.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.rebalance()
		var out []*stream.Record
		size := 0
		full := func(r *stream.Record) bool {
			return len(out) >= c.max || c.maxBytes > 0 && len(out) > 0 && size+len(r.Value) > c.maxBytes
		}
		for _, name := range c.topics {
			t, pos := c.b.topics[name], c.g.positions[name]
			for p, next := range c.next[name] {
				if pos.owner[p] != c {
					continue
				}
				for next < int64(len(t.parts[p])) && !full(t.parts[p][next]) {
					r := *t.parts[p][next]
					size += len(r.Value)
					r.Handle = c.g
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

// rebalance gives up the partitions that now belong to another member and
// takes those of its own that nobody holds, from the committed position.
// Partition p of a topic belongs to the (p mod n)-th of the n members
// that consume the topic and have polled. Called with the bus locked.
func (c *consumer) rebalance() {
	changed := false
	for _, name := range c.topics {
		pos := c.g.positions[name]
		var subs []*consumer
		for _, m := range c.g.members {
			if slices.Contains(m.topics, name) {
				subs = append(subs, m)
			}
		}
		var revoked []int32
		for p := range pos.owner {
			mine := subs[p%len(subs)] == c
			switch {
			case pos.owner[p] == c && !mine:
				pos.owner[p], changed = nil, true
				revoked = append(revoked, int32(p))
			case pos.owner[p] == nil && mine:
				pos.owner[p] = c
				c.next[name][p] = pos.committed[p]
			}
		}
		if len(revoked) > 0 && c.onRevoked != nil {
			c.onRevoked(name, revoked)
		}
	}
	if changed {
		c.b.cond.Broadcast()
	}
}

// Commit marks recs as processed. A partition's position moves over the
// records committed without a gap from it; records committed after an
// uncommitted one wait for it. Records of partitions handed to another
// member meanwhile are committed all the same.
func (c *consumer) Commit(_ context.Context, recs ...*stream.Record) error {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.closed || c.b.closed {
		return stream.ErrClosed
	}
	for _, r := range recs {
		pos := c.g.positions[r.Topic]
		if r.Handle != c.g || pos == nil || r.Partition < 0 || int(r.Partition) >= len(pos.committed) {
			return fmt.Errorf("memory bus: commit of a record %s/%d@%d not polled by group %s", r.Topic, r.Partition, r.Offset, c.g.name)
		}
		p := r.Partition
		if r.Offset < pos.committed[p] {
			continue
		}
		if pos.ahead[p] == nil {
			pos.ahead[p] = map[int64]struct{}{}
		}
		pos.ahead[p][r.Offset] = struct{}{}
		for {
			if _, ok := pos.ahead[p][pos.committed[p]]; !ok {
				break
			}
			delete(pos.ahead[p], pos.committed[p])
			pos.committed[p]++
		}
	}
	return nil
}

// Lag counts the records after the group's positions.
func (c *consumer) Lag(context.Context) (int64, error) {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	var lag int64
	for _, name := range c.topics {
		t := c.b.topics[name]
		for p, off := range c.g.positions[name].committed {
			lag += int64(len(t.parts[p])) - off
		}
	}
	return lag, nil
}

// Close leaves the group: the member's partitions go to the others, from
// the committed positions.
func (c *consumer) Close() error {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if i := slices.Index(c.g.members, c); i >= 0 {
		c.g.members = slices.Delete(c.g.members, i, i+1)
	}
	for _, name := range c.topics {
		pos := c.g.positions[name]
		var revoked []int32
		for p, o := range pos.owner {
			if o == c {
				pos.owner[p] = nil
				revoked = append(revoked, int32(p))
			}
		}
		if len(revoked) > 0 && c.onRevoked != nil {
			c.onRevoked(name, revoked)
		}
	}
	c.b.cond.Broadcast()
	return nil
}

// StateStore returns the store called name: values kept in the bus's
// memory, as long as the bus.
func (b *Bus) StateStore(_ context.Context, name string) (stream.StateStore, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, stream.ErrClosed
	}
	if b.stores == nil {
		b.stores = map[string]map[string][]byte{}
	}
	if b.stores[name] == nil {
		b.stores[name] = map[string][]byte{}
	}
	return &store{b: b, name: name}, nil
}

type store struct {
	b    *Bus
	name string
}

func (s *store) Put(_ context.Context, key string, value []byte) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.b.Fail != nil {
		return s.b.Fail
	}
	s.b.stores[s.name][key] = bytes.Clone(value)
	return nil
}

func (s *store) Get(_ context.Context, key string) ([]byte, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.b.Fail != nil {
		return nil, s.b.Fail
	}
	return bytes.Clone(s.b.stores[s.name][key]), nil
}
