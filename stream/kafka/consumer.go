package kafka

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/stream"
)

// consumer is one member of a consumer group, with a franz-go client of
// its own.
type consumer struct {
	b      *Bus
	cl     *kgo.Client
	group  string
	topics []string
	max    int
	// txn: the client is a GroupTransactSession's, which commits the
	// polled positions itself; the tracker is not used.
	txn       bool
	onRevoked func(topic string, partitions []int32)
	onLost    func(topic string, partition int32, records int64)
	loss      lossTracker // records removed before the group read them

	track     tracker
	closed    atomic.Bool
	closeOnce sync.Once
}

// Consume joins cfg.Group as a new member (cooperative-sticky balancing).
// The member consumes the partitions the group assigns to it, from the
// group's committed positions; a partition without one starts at
// cfg.Start.
func (b *Bus) Consume(cfg stream.ConsumerConfig) (stream.Consumer, error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("kafka: consume: %w", stream.ErrClosed)
	}
	if err := validateConsumer(cfg); err != nil {
		return nil, fmt.Errorf("kafka: consume: %w", err)
	}
	c := &consumer{
		b:         b,
		group:     cfg.Group,
		topics:    append([]string(nil), cfg.Topics...),
		max:       cfg.MaxPollRecords,
		track:     tracker{parts: map[topicPartition]*pending{}},
		onRevoked: cfg.OnRevoked,
		onLost:    cfg.OnLost,
	}
	if c.max <= 0 {
		c.max = defaultMaxPollRecords
	}
	id := b.nextMember(cfg.Group)
	opts := append(b.cfg.clientOpts(id),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(c.topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		// Commit only what Commit marked: at its own commits, by the
		// periodic autocommit (which then has nothing new), and before
		// partitions are revoked or the member leaves.
		kgo.AutoCommitMarks(),
		// Rebalance only inside Poll (and Close): the partitions of the
		// records a caller holds cannot move to another member before it
		// polls again.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
		kgo.ConsumeStartOffset(startOffset(cfg.Start)),
		// A committed position that retention has since removed resumes
		// at the oldest retained record: never skip what is still there.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Never see the records of aborted (or still open) transactions,
		// e.g. those of a transactional worker that crashed; no effect
		// on topics written without transactions.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	opts = append(opts, b.cfg.groupOpts()...)
	opts = append(opts, pollBytesOpts(cfg.MaxPollBytes)...)
	opts = append(opts, metricsOpts(b.cfg.Registerer)...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: consume: %w", err)
	}
	c.cl = cl
	b.mu.Lock()
	b.consumers[c] = struct{}{}
	b.mu.Unlock()
	return c, nil
}

// pollBytesOpts bound what the client fetches to n bytes (as stored: the
// records take the compression ratio more once decompressed): a fetch asks
// for at most n bytes, and at most min(n, 1 MiB) of one partition (Kafka's
// default), and only one fetch is in flight or buffered at a time, so the
// client holds at most one fetch beside the records of the last Poll,
// however many brokers it reads from. A batch larger than the limits still
// comes alone (the brokers always return a partition's first batch).
func pollBytesOpts(n int) []kgo.Opt {
	if n <= 0 {
		return nil
	}
	n = min(n, math.MaxInt32)
	return []kgo.Opt{
		kgo.FetchMaxBytes(int32(n)),
		kgo.FetchMaxPartitionBytes(int32(min(n, 1<<20))),
		kgo.MaxConcurrentFetches(1),
	}
}

func validateConsumer(cfg stream.ConsumerConfig) error {
	var errs []error
	if cfg.Group == "" {
		errs = append(errs, errors.New("group is required"))
	}
	if len(cfg.Topics) == 0 {
		errs = append(errs, errors.New("at least one topic is required"))
	}
	if cfg.MaxPollBytes < 0 {
		errs = append(errs, errors.New("max poll bytes must not be negative"))
	}
	switch cfg.Start.Kind {
	case stream.StartEarliest, stream.StartLatest:
	case stream.StartAtTime:
		if cfg.Start.Time.IsZero() {
			errs = append(errs, errors.New("start at time: time is required"))
		}
	case stream.StartAtOffset:
		if cfg.Start.Offset < 0 {
			errs = append(errs, errors.New("start at offset: offset must not be negative"))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown start kind %d", cfg.Start.Kind))
	}
	return errors.Join(errs...)
}

func startOffset(s stream.Start) kgo.Offset {
	switch s.Kind {
	case stream.StartLatest:
		return kgo.NewOffset().AtEnd()
	case stream.StartAtTime:
		return kgo.NewOffset().AfterMilli(s.Time.UnixMilli())
	case stream.StartAtOffset:
		return kgo.NewOffset().At(s.Offset)
	}
	return kgo.NewOffset().AtStart()
}

// Poll returns the next records of the member's partitions, at most
// MaxPollRecords (default 10000). It also lets the group rebalance, which
// is blocked between two Polls. A fetch error without records is
// returned (stream.ErrUnavailable when it may clear); with records, it is
// logged.
func (c *consumer) Poll(ctx context.Context) ([]*stream.Record, error) {
	for {
		if c.closed.Load() {
			return nil, fmt.Errorf("kafka: poll: %w", stream.ErrClosed)
		}
		c.cl.AllowRebalance()
		fetches := c.cl.PollRecords(ctx, c.max)
		if fetches.IsClientClosed() {
			return nil, fmt.Errorf("kafka: poll: %w", stream.ErrClosed)
		}
		var fetchErr error
		for _, fe := range fetches.Errors() {
			var loss *kgo.ErrDataLoss
			switch {
			case errors.Is(fe.Err, context.Canceled), errors.Is(fe.Err, context.DeadlineExceeded):
				if ctx.Err() != nil && fetchErr == nil {
					fetchErr = ctx.Err()
				}
			case errors.As(fe.Err, &loss):
				// franz-go has already resumed where the broker's log goes on.
				c.b.log.Warn("kafka: data loss detected", "group", c.group, "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
			default:
				c.b.log.Warn("kafka: fetch", "group", c.group, "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
				if fetchErr == nil {
					fetchErr = wrapErr(fmt.Sprintf("fetch %s[%d]", fe.Topic, fe.Partition), fe.Err)
				}
			}
		}
		c.checkLost(fetches)
		if fetches.NumRecords() == 0 {
			if fetchErr != nil {
				return nil, fetchErr
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			continue
		}
		return c.convert(fetches), nil
	}
}

// convert turns the fetched records into stream records, allocated in one
// slab per Poll, and tracks them for Commit. Key, Value and header values
// alias franz-go's buffers, which are not reused.
func (c *consumer) convert(fetches kgo.Fetches) []*stream.Record {
	n, nh := 0, 0
	fetches.EachRecord(func(r *kgo.Record) {
		n++
		nh += len(r.Headers)
	})
	recs := make([]stream.Record, n)
	out := make([]*stream.Record, n)
	hdrs := make([]stream.Header, nh)
	i, h := 0, 0
	c.track.mu.Lock()
	defer c.track.mu.Unlock()
	fetches.EachRecord(func(r *kgo.Record) {
		sr := &recs[i]
		*sr = stream.Record{
			Topic:     r.Topic,
			Partition: r.Partition,
			Offset:    r.Offset,
			Key:       r.Key,
			Value:     r.Value,
			Timestamp: r.Timestamp,
			Handle:    r,
		}
		if len(r.Headers) > 0 {
			start := h
			for _, kh := range r.Headers {
				hdrs[h] = stream.Header{Key: kh.Key, Value: kh.Value}
				h++
			}
			sr.Headers = hdrs[start:h:h]
		}
		out[i] = sr
		i++
		if !c.txn {
			c.track.polled(r)
		}
	})
	return out
}

// Unpin implements stream.Unpinner: the records and their kgo records
// let go of key, value and headers (a batch's decompressed bytes are freed
// once none of its records holds them); Commit needs only their positions.
func (c *consumer) Unpin(recs ...*stream.Record) {
	for _, r := range recs {
		if kr, ok := r.Handle.(*kgo.Record); ok {
			kr.Key, kr.Value, kr.Headers = nil, nil, nil
		}
		r.Key, r.Value, r.Headers = nil, nil, nil
	}
}

// Commit records recs as processed and commits, synchronously, the
// positions this allows: in each partition, up to the first polled record
// that has not been committed yet. Records of partitions the member no
// longer owns are ignored (the new owner gets them again).
func (c *consumer) Commit(ctx context.Context, recs ...*stream.Record) error {
	if c.closed.Load() {
		return fmt.Errorf("kafka: commit: %w", stream.ErrClosed)
	}
	marks, err := c.track.commit(recs)
	if err != nil {
		return fmt.Errorf("kafka: commit: %w", err)
	}
	if len(marks) > 0 {
		c.cl.MarkCommitOffsets(marks)
	}
	if err := c.cl.CommitMarkedOffsets(ctx); err != nil {
		return wrapErr("commit group "+c.group, err)
	}
	return nil
}

// revoked commits the marked positions of the partitions leaving this
// member (and, when it leaves the group, of all), so that the next owner
// starts right after what was processed.
func (c *consumer) revoked(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		c.b.log.Warn("kafka: commit before rebalance", "group", c.group, "err", err)
	}
	c.track.drop(parts)
	c.loss.drop(parts)
	c.tellRevoked(parts)
}

// lost forgets partitions that were taken away without a chance to commit.
func (c *consumer) lost(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	c.track.drop(parts)
	c.loss.drop(parts)
	c.tellRevoked(parts)
}

func (c *consumer) tellRevoked(parts map[string][]int32) {
	if c.onRevoked == nil {
		return
	}
	for topic, ps := range parts {
		if len(ps) > 0 {
			c.onRevoked(topic, ps)
		}
	}
}

// Lag sums, over the partitions of the consumed topics, the records after
// the group's committed position (or after the oldest retained record
// where the group has none).
func (c *consumer) Lag(ctx context.Context) (int64, error) {
	if c.closed.Load() {
		return 0, fmt.Errorf("kafka: lag: %w", stream.ErrClosed)
	}
	parts, err := c.b.GroupLag(ctx, c.group, c.topics...)
	if err != nil {
		return 0, err
	}
	var lag int64
	for _, p := range parts {
		lag += p.Lag
	}
	return lag, nil
}

// Close commits what was marked, leaves the group (its partitions go to
// the other members at once) and closes the client. Records polled and not
// committed go to whichever member gets their partition.
func (c *consumer) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		// Leaving runs revoked, which commits the marks.
		c.cl.CloseAllowingRebalance()
		c.b.mu.Lock()
		delete(c.b.consumers, c)
		c.b.mu.Unlock()
	})
	return nil
}
