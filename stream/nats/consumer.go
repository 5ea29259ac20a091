package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/stream"
)

const (
	// pollWait is how long one pull request waits for a first record
	// when the group reads a single topic; Poll repeats it until its
	// context ends.
	pollWait = 5 * time.Second
	// pollSlice is that wait per topic when the group reads several:
	// Poll goes round them, so a record on an idle topic waits at most
	// about (topics-1) × pollSlice.
	pollSlice = 200 * time.Millisecond
	// gatherWait is how long a pull request waits to fill a batch once
	// records are flowing: what a trickle of records adds to latency.
	gatherWait = 10 * time.Millisecond

	pollBackoffMin = 100 * time.Millisecond
	pollBackoffMax = 2 * time.Second
)

// pollBackoff gives the waits of a Poll between failed fetches while the
// server cannot be reached: pollBackoffMin, doubling up to pollBackoffMax.
func pollBackoff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{InitialInterval: pollBackoffMin, Multiplier: 2, MaxInterval: pollBackoffMax}
}

// consumer is one member of a group: it pulls from one durable JetStream
// consumer per topic, shared with the other members of the group.
type consumer struct {
	bus     *Bus
	group   string
	srcs    []*source
	maxPoll int
	// maxBytes bounds the message bytes of one Poll's pull requests; 0:
	// no bound.
	maxBytes int
	onLost   func(topic string, partition int32, records int64)

	ctx    context.Context // ends when the consumer closes
	cancel context.CancelFunc
	closed atomic.Bool

	mu   sync.Mutex // serialises Poll
	next int        // topic Poll starts with, round robin

	// inHand are the records polled and not yet committed, by reply
	// subject: keepAlive tells the server they are still being worked on
	// so that a batch held longer than AckWait (a sink retrying) is not
	// delivered to another member meanwhile, up to MaxHold (hold.go).
	handMu        sync.Mutex
	inHand        map[string]held
	onHoldExpired func(topic string, records int64)
}

type source struct {
	topic string
	cons  jetstream.Consumer
	loss  lossChain // records removed before the group got them (lost.go)
}

var _ stream.Consumer = (*consumer)(nil)

// Consume joins group cfg.Group: for each topic it creates the group's
// durable pull consumer on the topic's stream unless it exists (cfg.Start
// then only matters for the first member ever), and binds to it. Members of
// one group share the consumer, so JetStream spreads records across them.
func (b *Bus) Consume(cfg stream.ConsumerConfig) (stream.Consumer, error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("nats: consume: %w", stream.ErrClosed)
	}
	if cfg.Group == "" || len(cfg.Topics) == 0 {
		return nil, errors.New("nats: consume: a group and at least one topic are required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.PublishTimeout)
	defer cancel()

	c := &consumer{bus: b, group: cfg.Group, maxPoll: cfg.MaxPollRecords, onLost: cfg.OnLost, onHoldExpired: cfg.OnHoldExpired}
	if c.maxPoll <= 0 {
		c.maxPoll = defaultMaxPollRecords
	}
	if cfg.MaxPollBytes > 0 {
		// A pull whose next message exceeds its byte limit ends without
		// it: never ask for less than the largest message.
		c.maxBytes = max(cfg.MaxPollBytes, int(b.nc.MaxPayload())+msgOverhead)
	}
	name := consumerName(cfg.Group)
	for _, topic := range slices.Compact(slices.Sorted(slices.Values(cfg.Topics))) {
		t, err := b.topic(ctx, topic)
		if err != nil {
			return nil, wrapErr("consume "+topic, err)
		}
		cons, err := b.durable(ctx, t.stream, name, cfg)
		if err != nil {
			return nil, wrapErr("consume "+topic, err)
		}
		src := &source{topic: topic, cons: cons}
		src.loss.start(cons.CachedInfo())
		c.srcs = append(c.srcs, src)
	}
	c.ctx, c.cancel = context.WithCancel(b.done)
	c.inHand = map[string]held{}
	go c.keepAlive(max(b.cfg.AckWait/3, 10*time.Millisecond))
	return c, nil
}

// durable returns the group's consumer on streamName, creating it if
// needed. An existing consumer keeps its position; only AckWait and
// MaxAckPending follow the configuration.
func (b *Bus) durable(ctx context.Context, streamName, name string, cfg stream.ConsumerConfig) (jetstream.Consumer, error) {
	cons, err := b.js.Consumer(ctx, streamName, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cc := jetstream.ConsumerConfig{
			Durable:       name,
			Description:   "sluice group " + cfg.Group,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       b.cfg.AckWait,
			MaxAckPending: b.cfg.MaxAckPending,
			MaxDeliver:    -1,
		}
		setStart(&cc, cfg.Start)
		cons, err = b.js.CreateConsumer(ctx, streamName, cc)
		if err != nil {
			// Another member may have created it meanwhile, with another
			// Start: theirs wins.
			if other, err2 := b.js.Consumer(ctx, streamName, name); err2 == nil {
				cons, err = other, nil
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if info := cons.CachedInfo(); cfg.InOrder && info.NumAckPending > 0 {
		if cons, err = b.restartAtAckFloor(ctx, streamName, info); err != nil {
			return nil, err
		}
	}
	cc := cons.CachedInfo().Config
	if cc.AckWait == b.cfg.AckWait && cc.MaxAckPending == b.cfg.MaxAckPending {
		return cons, nil
	}
	cc.AckWait, cc.MaxAckPending = b.cfg.AckWait, b.cfg.MaxAckPending
	return b.js.UpdateConsumer(ctx, streamName, cc)
}

// restartAtAckFloor replaces a consumer that has records pending (left
// unacknowledged by a member that is gone) with one that starts at its
// first unacknowledged record, so that they come before the newer ones
// (stream.ConsumerConfig.InOrder).
func (b *Bus) restartAtAckFloor(ctx context.Context, streamName string, info *jetstream.ConsumerInfo) (jetstream.Consumer, error) {
	cc := info.Config
	cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = jetstream.DeliverByStartSequencePolicy, info.AckFloor.Stream+1, nil
	if err := b.js.DeleteConsumer(ctx, streamName, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, err
	}
	b.log.Info("nats: consumer restarted at its first unacknowledged record, for in-order redelivery", "consumer", info.Name,
		"stream", streamName, "sequence", cc.OptStartSeq, "pending", info.NumAckPending)
	return b.js.CreateConsumer(ctx, streamName, cc)
}

func setStart(cc *jetstream.ConsumerConfig, s stream.Start) {
	switch s.Kind {
	case stream.StartLatest:
		cc.DeliverPolicy = jetstream.DeliverNewPolicy
	case stream.StartAtTime:
		t := s.Time.UTC()
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	case stream.StartAtOffset:
		// A JetStream sequence numbers the whole stream, not one
		// partition, and starts at 1.
		if s.Offset > 1 {
			cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, uint64(s.Offset)
		}
	default:
		cc.DeliverPolicy = jetstream.DeliverAllPolicy
	}
}

// consumerName turns a group into a valid durable name: characters other
// than letters, digits, '-' and '_' become '_', and a hash of the original
// keeps "a.b" and "a_b" apart.
func consumerName(group string) string {
	buf := []byte(group)
	changed := false
	for i, c := range buf {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			buf[i], changed = '_', true
		}
	}
	if !changed {
		return group
	}
	return fmt.Sprintf("%s_%08x", buf, fnv1a([]byte(group)))
}

// Poll returns the next records of the group's topics: first whatever is
// available, up to MaxPollRecords, taking the topics in turn from a
// rotating start; if there is nothing, it waits for the first record and
// takes what came with it. While the server cannot be reached it keeps
// trying (the connection reconnects in the background) until ctx ends or
// the consumer closes. At ctx's deadline Poll lets the server end its wait
// rather than drop it (which would strand records already sent until
// AckWait), so it may return a few milliseconds late.
func (c *consumer) Poll(ctx context.Context) ([]*stream.Record, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	// abort ends a wait for records early: on Close, or when the caller
	// cancels. Not at the caller's deadline: fetch plans its waits to end
	// by then, and a wait cut short loses records already on their way
	// (they come again only after AckWait).
	abort, abortCancel := context.WithCancel(c.ctx)
	defer abortCancel()
	defer context.AfterFunc(ctx, func() {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			abortCancel()
		}
	})()

	retry := pollBackoff()
	var failing error
	for {
		if c.closed.Load() || c.bus.closed.Load() {
			return nil, fmt.Errorf("nats: poll: %w", stream.ErrClosed)
		}
		if err := expired(ctx); err != nil {
			return nil, err
		}
		recs, err := c.fetch(ctx, abort.Done())
		if len(recs) > 0 {
			if failing != nil {
				c.bus.log.Info("nats: poll recovered", "group", c.group)
			}
			c.hold(recs)
			return recs, nil
		}
		if err == nil || expired(ctx) != nil || c.closed.Load() {
			continue
		}
		if errors.Is(err, errAborted) {
			// Closed, or cancelled by the caller; the loop's first
			// checks tell which (the closed flags are set before the
			// cancellation that aborted).
			continue
		}
		if !transient(err) || closed(err) {
			return nil, wrapErr("poll", err)
		}
		if failing == nil {
			c.bus.log.Warn("nats: poll failing, retrying", "group", c.group, "err", err)
		}
		failing = err
		select {
		case <-ctx.Done():
		case <-time.After(retry.NextBackOff()):
		}
	}
}

// fetch makes one round over the topics; it returns no records and no
// error when the wait ran out.
//
// It uses pull requests with an expiry only, and waits for the server to
// end them. A "no wait" request would be quicker to answer "nothing", but
// when the group holds MaxAckPending records the server leaves it open and
// nats.go gives up on it after a second, whatever the context says.
func (c *consumer) fetch(ctx context.Context, abort <-chan struct{}) ([]*stream.Record, error) {
	n := len(c.srcs)
	start := c.next
	c.next = (c.next + 1) % n

	// What is there now, topic by topic from a rotating start so that a
	// busy topic does not starve the others.
	var got []fetched
	var err error
	for i := 0; i < n && len(got) < c.maxPoll && c.room(got) > 0; i++ {
		if got, err = c.gather(c.srcs[(start+i)%n], got, abort); err != nil {
			break
		}
	}
	if len(got) > 0 || err != nil {
		return c.records(got), err
	}

	// Nothing anywhere: wait on one topic for its first record, then
	// take what is there behind it. The server ends the wait by ctx's
	// deadline.
	s := c.srcs[start]
	wait := pollWait
	if n > 1 {
		wait = pollSlice
	}
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	if wait < time.Millisecond {
		return nil, nil
	}
	batch, err := s.cons.Fetch(1, jetstream.FetchMaxWait(wait))
	if err == nil {
		got, err = drain(s, batch, got, abort)
	}
	if len(got) == 0 {
		return nil, err
	}
	if c.maxPoll > 1 && c.room(got) > 0 {
		got, _ = c.gather(s, got, abort) // the first record is there; errors can wait for the next Poll
	}
	return c.records(got), nil
}

// gather fetches what s has now, up to the poll's room: the server answers
// at once with a full batch, else when gatherWait runs out.
func (c *consumer) gather(s *source, got []fetched, abort <-chan struct{}) ([]fetched, error) {
	opts := []jetstream.FetchOpt{jetstream.FetchMaxWait(gatherWait)}
	if c.maxBytes > 0 {
		opts = append(opts, jetstream.FetchMaxBytes(max(c.room(got), int(c.bus.nc.MaxPayload())+msgOverhead)))
	}
	batch, err := s.cons.Fetch(c.maxPoll-len(got), opts...)
	if err != nil {
		return got, err
	}
	return drain(s, batch, got, abort)
}

// msgOverhead is what a message counts towards a pull's byte limit beyond
// its payload and headers (the server counts subject and reply too): a
// margin.
const msgOverhead = 512

// room is how many bytes the pull requests of this Poll may still ask
// for: 1 without a byte bound.
func (c *consumer) room(got []fetched) int {
	if c.maxBytes <= 0 {
		return 1
	}
	n := c.maxBytes
	for _, f := range got {
		n -= len(f.msg.Data()) + msgOverhead
	}
	return n
}

// expired is ctx.Err(), or DeadlineExceeded as soon as the deadline has
// passed (ctx.Err may lag behind it by a moment).
func expired(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= time.Millisecond {
		return context.DeadlineExceeded
	}
	return nil
}

type fetched struct {
	src *source
	msg jetstream.Msg
}

// errAborted: Poll stopped waiting for a pull request (Close, or the
// caller cancelled). What the server still sends to it is delivered again
// after AckWait.
var errAborted = errors.New("poll aborted")

// drain collects batch's records until the server ends the request or
// abort closes.
func drain(s *source, batch jetstream.MessageBatch, got []fetched, abort <-chan struct{}) ([]fetched, error) {
	msgs := batch.Messages()
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				err := batch.Error()
				if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, natsgo.ErrTimeout) {
					err = nil
				}
				return got, err
			}
			got = append(got, fetched{src: s, msg: m})
		case <-abort:
			return got, errAborted
		}
	}
}

// records converts fetched messages into records, allocated in one block.
func (c *consumer) records(got []fetched) []*stream.Record {
	if len(got) == 0 {
		return nil
	}
	block := make([]stream.Record, len(got))
	out := make([]*stream.Record, 0, len(got))
	for i, f := range got {
		r := &block[i]
		if err := decode(r, f.src.topic, f.msg); err != nil {
			// Not written by this bus (someone published to the
			// subjects directly). Hand it on rather than hold it: the
			// next stage dead-letters what it cannot read.
			c.bus.log.Warn("nats: odd message", "topic", f.src.topic, "subject", f.msg.Subject(), "err", err)
		}
		c.checkLost(f)
		out = append(out, r)
	}
	return out
}

// decode fills r from m, undoing what Produce added to the headers.
func decode(r *stream.Record, topic string, m jetstream.Msg) error {
	r.Topic, r.Value, r.Handle = topic, m.Data(), m
	var errs []error
	md, err := m.Metadata()
	if err != nil {
		errs = append(errs, err)
	} else {
		r.Offset, r.Timestamp = int64(md.Sequence.Stream), md.Timestamp
	}
	if r.Partition, err = partitionOf(topic, m.Subject()); err != nil {
		errs = append(errs, err)
	}
	h := m.Headers()
	if len(h) == 0 {
		return errors.Join(errs...)
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		switch k {
		case headerKey:
			r.Key = []byte(h.Get(k))
		case headerKeyBase64:
			if r.Key, err = base64.StdEncoding.DecodeString(h.Get(k)); err != nil {
				errs = append(errs, fmt.Errorf("header %s: %w", k, err))
			}
		case headerTimestamp:
			ns, err := strconv.ParseInt(h.Get(k), 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("header %s: %w", k, err))
				continue
			}
			r.Timestamp = time.Unix(0, ns)
		default:
			if checkHeaderKey(k) != nil {
				// JetStream's own (Nats-Msg-Id of a client that
				// deduplicates, ...): they steered the server when
				// the record was published; handed on, they would make
				// producing the record again (a dead letter) fail.
				continue
			}
			keys = append(keys, k)
		}
	}
	// NATS headers are a map: the order of distinct keys is lost, so give
	// a stable one.
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			r.Headers = append(r.Headers, stream.Header{Key: k, Value: []byte(v)})
		}
	}
	return errors.Join(errs...)
}

// ackAck is the ack JetStream answers when it has a reply subject.
var ackAck = []byte("+ACK")

// unpinned is what Unpin leaves of a polled record's message: the
// subject its acknowledgement goes to.
type unpinned string

// replyOf is the acknowledgement subject of a polled record; "" for a
// record Poll did not return.
func replyOf(r *stream.Record) string {
	switch h := r.Handle.(type) {
	case jetstream.Msg:
		return h.Reply()
	case unpinned:
		return string(h)
	}
	return ""
}

// Unpin implements stream.Unpinner: the records let go of their messages
// (and so of their data), keeping the subject Commit acknowledges them on.
func (c *consumer) Unpin(recs ...*stream.Record) {
	for _, r := range recs {
		if m, ok := r.Handle.(jetstream.Msg); ok {
			r.Handle = unpinned(m.Reply())
		}
		r.Key, r.Value, r.Headers = nil, nil, nil
	}
}

// Commit acknowledges recs and waits until the server confirms each ack,
// i.e. has removed the record from the group's pending set (and, in a
// cluster, replicated that). The acks go out together and share one reply
// subscription, so a Commit costs one round trip however many records it
// carries. Committing a record twice is harmless.
//
// A plain ack (fire and forget, even flushed) would keep at-least-once —
// a lost ack only means a redelivery — but the server queues acks
// internally and drops that queue at shutdown: a committed record could
// come again. Confirmed acks make "committed records never come again"
// hold.
func (c *consumer) Commit(ctx context.Context, recs ...*stream.Record) error {
	if c.closed.Load() || c.bus.closed.Load() {
		return fmt.Errorf("nats: commit: %w", stream.ErrClosed)
	}
	if len(recs) == 0 {
		return nil
	}
	// Committed, or not (then they come again after AckWait, as the
	// caller expects of a failed commit): no longer in hand either way.
	defer c.release(recs)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.bus.cfg.PublishTimeout)
		defer cancel()
	}
	nc := c.bus.nc
	replies := make(chan *natsgo.Msg, len(recs))
	sub, err := nc.ChanSubscribe(nc.NewInbox(), replies)
	if err != nil {
		return wrapErr("commit", err)
	}
	defer sub.Unsubscribe()
	for _, r := range recs {
		reply := replyOf(r)
		if reply == "" {
			return fmt.Errorf("nats: commit: record %s/%d@%d was not returned by Poll", r.Topic, r.Partition, r.Offset)
		}
		if err := nc.PublishMsg(&natsgo.Msg{Subject: reply, Reply: sub.Subject, Data: ackAck}); err != nil {
			return wrapErr("commit", err)
		}
	}
	for i := range recs {
		select {
		case <-replies:
		case <-ctx.Done():
			return wrapErr("commit", fmt.Errorf("%d of %d acks confirmed: %w", i, len(recs), ctx.Err()))
		}
	}
	return nil
}

// Lag is the number of records of the consumed topics that the group has
// not committed: not yet delivered plus delivered and not acknowledged.
func (c *consumer) Lag(ctx context.Context) (int64, error) {
	var lag int64
	for _, s := range c.srcs {
		info, err := s.cons.Info(ctx)
		if err != nil {
			return 0, wrapErr("lag "+s.topic, err)
		}
		lag += int64(info.NumPending) + int64(info.NumAckPending)
	}
	return lag, nil
}

// Close stops Poll. Records polled and not committed stay unacknowledged
// and are delivered again after AckWait; the group's durable consumers
// remain on the server for the other members and the next start.
func (c *consumer) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.cancel()
	return nil
}
