package nats

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/sluice-dev/sluice/stream"
)

var _ stream.Tapper = (*Bus)(nil)

const (
	// tapInactive is how long the server keeps a tap's consumer once its
	// client stopped asking (a tap that died without Close).
	tapInactive = 30 * time.Second
	// tapGather is how long Poll waits for more records once one came.
	tapGather  = 20 * time.Millisecond
	tapMaxPoll = 1000
)

// tap reads a topic's stream through an ordered consumer: ephemeral, kept
// in memory, without acks, deleted by Close (or by the server once
// inactive for tapInactive). No group's consumer is touched.
type tap struct {
	b      *Bus
	stream string
	topic  string
	cons   jetstream.Consumer
	msgs   jetstream.MessagesContext
	closed atomic.Bool
}

// Tap reads every partition of topic from start through an ephemeral
// ordered consumer. The topic's stream must exist: Tap never creates it.
func (b *Bus) Tap(ctx context.Context, topic string, start stream.Start) (stream.Tap, error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("nats: tap: %w", stream.ErrClosed)
	}
	cfg := jetstream.OrderedConsumerConfig{InactiveThreshold: tapInactive, NamePrefix: "sluice-tap-" + nuid.Next()}
	switch start.Kind {
	case stream.StartLatest:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	case stream.StartEarliest:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case stream.StartAtTime:
		if start.Time.IsZero() {
			return nil, errors.New("nats: tap: start at time: time is required")
		}
		t := start.Time.UTC()
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	default:
		return nil, fmt.Errorf("nats: tap: start kind %d is not supported", start.Kind)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	t, err := b.topic(ctx, topic)
	if err != nil {
		return nil, wrapErr("tap "+topic, err)
	}
	cons, err := b.js.OrderedConsumer(ctx, t.stream, cfg)
	if err != nil {
		return nil, wrapErr("tap "+topic, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return nil, wrapErr("tap "+topic, err)
	}
	return &tap{b: b, stream: t.stream, topic: topic, cons: cons, msgs: msgs}, nil
}

// Poll waits for a record, then takes what follows it within tapGather.
func (t *tap) Poll(ctx context.Context) ([]*stream.Record, error) {
	if t.closed.Load() {
		return nil, fmt.Errorf("nats: tap: %w", stream.ErrClosed)
	}
	var out []*stream.Record
	for len(out) < tapMaxPoll {
		var (
			m   jetstream.Msg
			err error
		)
		if len(out) == 0 {
			m, err = t.msgs.Next(jetstream.NextContext(ctx))
		} else {
			m, err = t.msgs.Next(jetstream.NextMaxWait(tapGather))
		}
		if err != nil {
			if len(out) > 0 && (errors.Is(err, natsgo.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)) {
				break
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil, fmt.Errorf("nats: tap: %w", stream.ErrClosed)
			}
			return out, wrapErr("tap "+t.topic, err)
		}
		r := &stream.Record{}
		if err := decode(r, t.topic, m); err != nil {
			t.b.log.Warn("nats: odd message", "topic", t.topic, "subject", m.Subject(), "err", err)
		}
		r.Handle = nil // nothing to commit
		out = append(out, r)
	}
	return out, nil
}

// Close stops the tap and deletes its consumer on the server.
func (t *tap) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.msgs.Stop()
	info := t.cons.CachedInfo()
	if info == nil || t.b.closed.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.b.cfg.PublishTimeout)
	defer cancel()
	if err := t.b.js.DeleteConsumer(ctx, t.stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return wrapErr("tap: delete consumer "+info.Name, err)
	}
	return nil
}
