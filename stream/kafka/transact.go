package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/stream"
)

var _ stream.TransactionalBus = (*Bus)(nil)

// errTxnAborted: Commit could not commit the transaction (the group
// rebalanced, the member was fenced or lost its partitions); it was
// aborted and the polled records come again.
var errTxnAborted = errors.New("transaction aborted; the records will be polled again")

// txConsumer is a group member whose client is also a transactional
// producer (franz-go's GroupTransactSession): the records it produces
// after a Poll and the positions of that Poll are committed together, in
// one Kafka transaction, or not at all.
//
// State, under mu: inTxn when a transaction was begun (by Produce, or by
// Commit for a batch that produced nothing); failed when a produce of
// that transaction failed and it still has to be aborted; pending when a
// Poll returned records that no End has settled yet.
type txConsumer struct {
	consumer // Poll, Lag; the client is sess's
	sess     *kgo.GroupTransactSession

	mu                     sync.Mutex
	inTxn, failed, pending bool
}

// ConsumeTransactional joins cfg.Group like Consume, with a client that is
// also the transactional producer transactionalID: records produced with
// the returned consumer's Produce become visible, and the positions of the
// last Poll are committed, together at Commit (Kafka exactly-once
// semantics, KIP-447). It reads committed records only.
//
// transactionalID must not be used by two live consumers at once (each
// would fence the other); it should be the same when a consumer is
// restarted, so that the new one aborts at once what a crashed one left
// open (with a new id that waits for the transaction timeout).
func (b *Bus) ConsumeTransactional(cfg stream.ConsumerConfig, transactionalID string) (stream.TxConsumer, error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("kafka: consume transactional: %w", stream.ErrClosed)
	}
	err := validateConsumer(cfg)
	if transactionalID == "" {
		err = errors.Join(err, errors.New("transactional id is required"))
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: consume transactional: %w", err)
	}
	c := &txConsumer{consumer: consumer{
		b:      b,
		group:  cfg.Group,
		topics: append([]string(nil), cfg.Topics...),
		max:    cfg.MaxPollRecords,
		txn:    true,
		onLost: cfg.OnLost,
	}}
	if c.max <= 0 {
		c.max = defaultMaxPollRecords
	}
	id := b.nextMember(cfg.Group)
	opts := append(b.cfg.clientOpts(id), b.cfg.producerOpts()...)
	opts = append(opts,
		kgo.TransactionalID(transactionalID),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(c.topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		// Rebalance only inside Poll (and Close), between two
		// transactions: a rebalance while one is open aborts it.
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeStartOffset(startOffset(cfg.Start)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Read only committed records, and start from the positions of
		// the group only once no transaction is committing them.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		// Partitions that leave start again from the committed
		// positions: forget where this member stood in them.
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) { c.loss.drop(parts) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) { c.loss.drop(parts) }),
	)
	opts = append(opts, b.cfg.groupOpts()...)
	opts = append(opts, pollBytesOpts(cfg.MaxPollBytes)...)
	opts = append(opts, metricsOpts(b.cfg.Registerer)...)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: consume transactional: %w", err)
	}
	c.sess, c.cl = sess, sess.Client()
	b.mu.Lock()
	b.consumers[c] = struct{}{}
	b.mu.Unlock()
	return c, nil
}

// Poll returns the next records, like the group consumer's Poll. A batch
// polled before and not committed is abandoned first: its transaction is
// aborted and the member goes back to the group's committed positions, so
// that its records come again.
func (c *txConsumer) Poll(ctx context.Context) ([]*stream.Record, error) {
	c.mu.Lock()
	if c.pending || c.inTxn || c.failed {
		if err := c.abandon(ctx); err != nil {
			c.mu.Unlock()
			return nil, err
		}
	}
	c.mu.Unlock()
	recs, err := c.consumer.Poll(ctx)
	if len(recs) > 0 {
		c.mu.Lock()
		c.pending = true
		c.mu.Unlock()
	}
	return recs, err
}

// Produce writes recs in the transaction of the current Poll (beginning
// it) and waits until the brokers have acknowledged them; they become
// visible to read-committed consumers only at Commit. On failure the
// transaction is aborted, so that nothing produced in it since the Poll
// is ever visible, and the error is returned: the caller produces the
// whole batch again, in a new transaction. Calls are serialized.
func (c *txConsumer) Produce(ctx context.Context, recs ...*stream.Record) error {
	if len(recs) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return fmt.Errorf("kafka: produce: %w", stream.ErrClosed)
	}
	if c.failed {
		// The abort after the last failure did not get through.
		if err := c.abort(ctx); err != nil {
			return err
		}
	}
	if !c.inTxn {
		if err := c.sess.Begin(); err != nil {
			return wrapErr("begin transaction", err)
		}
		c.inTxn = true
	}
	err := c.b.produce(ctx, c.cl, recs)
	if err == nil {
		return nil
	}
	c.failed = true
	if aerr := c.abort(ctx); aerr != nil {
		c.b.log.Warn("kafka: aborting the transaction after a failed produce; retried before the next produce", "group", c.group, "err", aerr)
	}
	return fmt.Errorf("%w (transaction aborted)", err)
}

// abort aborts the open transaction after a failed produce, keeping the
// member's positions: the caller produces the batch in hand again, in a
// new transaction, and commits it. Called with mu held.
func (c *txConsumer) abort(ctx context.Context) error {
	// franz-go waits for the answer to records in flight before failing
	// them (their sequence numbers); bound the wait.
	ctx, cancel := c.b.bound(ctx)
	defer cancel()
	// The session's End would also reset the member to the committed
	// positions, and the batch in hand, produced again, would then be
	// polled once more: abort the producer's side only.
	if err := c.cl.AbortBufferedRecords(ctx); err != nil {
		return wrapErr("abort transaction", err)
	}
	if err := c.cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		return wrapErr("abort transaction", err)
	}
	c.inTxn, c.failed = false, false
	return nil
}

// Commit ends the transaction of the current Poll with a commit: the
// records produced since the Poll become visible and the positions of
// everything it polled are committed, atomically. recs are not looked at:
// the transaction covers the whole Poll, so the caller commits each Poll's
// batch as one (as stream/stage does).
//
// If the transaction cannot commit — the group rebalanced or the member
// lost its partitions since the Poll, it was fenced by a newer member with
// the same transactional id, the coordinator failed — it is aborted and
// Commit returns an error: nothing of the batch is visible and its records
// come again from Poll (to this member or to the partitions' new owner).
func (c *txConsumer) Commit(ctx context.Context, _ ...*stream.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return fmt.Errorf("kafka: commit: %w", stream.ErrClosed)
	}
	if c.failed {
		err := errors.New("a produce of the transaction failed")
		if aerr := c.abandon(ctx); aerr != nil {
			err = errors.Join(err, aerr)
		}
		return fmt.Errorf("kafka: commit: %w; %w", err, errTxnAborted)
	}
	if !c.inTxn {
		// The batch produced nothing: commit its positions alone.
		if err := c.sess.Begin(); err != nil {
			return wrapErr("begin transaction", err)
		}
		c.inTxn = true
	}
	// End must not be cut short by a cancelled ctx (the outcome would be
	// unknown): the stage's drain timeout bounds what follows a shutdown,
	// this bounds a stuck coordinator.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*c.b.cfg.ProduceTimeout+30*time.Second)
	defer cancel()
	committed, err := c.sess.End(ectx, kgo.TryCommit)
	c.inTxn = false
	switch {
	case err != nil:
		// End may have stopped before aborting: the next Poll (or
		// Close) aborts and resets the positions; pending stays.
		return wrapErr("commit transaction of group "+c.group, fmt.Errorf("%w: %w", errTxnAborted, err))
	case !committed:
		// End aborted and reset the member to the committed positions.
		c.pending = false
		return fmt.Errorf("kafka: commit transaction of group %s: %w", c.group, errTxnAborted)
	}
	c.pending = false
	return nil
}

// abandon aborts whatever the current transaction holds and resets the
// member to the group's committed positions, so that the records polled
// since come again. Called with mu held.
func (c *txConsumer) abandon(ctx context.Context) error {
	ctx, cancel := c.b.bound(context.WithoutCancel(ctx))
	defer cancel()
	if _, err := c.sess.End(ctx, kgo.TryAbort); err != nil {
		return wrapErr("abort transaction of group "+c.group, err)
	}
	c.inTxn, c.failed, c.pending = false, false, false
	return nil
}

// Close aborts an open transaction (what was produced in it is never
// visible; its records come again to whoever gets their partitions),
// leaves the group and closes the client.
func (c *txConsumer) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed.Store(true)
		if c.pending || c.inTxn || c.failed {
			err = c.abandon(context.Background())
		}
		c.mu.Unlock()
		c.sess.CloseAllowingRebalance()
		c.b.mu.Lock()
		delete(c.b.consumers, c)
		c.b.mu.Unlock()
	})
	return err
}
