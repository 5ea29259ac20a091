package nats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/stream"
)

var _ stream.Ranger = (*Bus)(nil)

// rangeFetchWait is how long one fetch of a range waits for records.
const rangeFetchWait = time.Second

// PositionsAt gives the stream sequence (under stream.AllPartitions) of the
// first record the server stored at or after t, found with an ordered
// consumer starting at t; t zero, or no such record, gives the end (the
// last sequence + 1). The server's store time is not Record.Timestamp:
// a record is stored after it was made, so every record with a Timestamp
// at or after t is at or after the position.
func (b *Bus) PositionsAt(ctx context.Context, topic string, t time.Time) (stream.Positions, error) {
	ti, err := b.topic(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	st, err := b.js.Stream(ctx, ti.stream)
	if err != nil {
		return nil, wrapErr("stream info of "+topic, err)
	}
	end := int64(st.CachedInfo().State.LastSeq) + 1
	if t.IsZero() {
		return stream.Positions{stream.AllPartitions: end}, nil
	}
	c, err := b.js.OrderedConsumer(ctx, ti.stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t})
	if err != nil {
		return nil, wrapErr("ordered consumer on "+topic, err)
	}
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(rangeFetchWait))
	if err != nil {
		return nil, wrapErr("fetch "+topic, err)
	}
	for m := range batch.Messages() {
		if md, err := m.Metadata(); err == nil {
			end = min(end, int64(md.Sequence.Stream))
		}
	}
	return stream.Positions{stream.AllPartitions: end}, nil
}

// ReadRange reads the sequences from[AllPartitions] up to
// to[AllPartitions] with an ordered consumer (an ephemeral consumer of no
// group, which acknowledges nothing).
func (b *Bus) ReadRange(ctx context.Context, topic string, from, to stream.Positions, maxRecords int) (stream.RangeReader, error) {
	if maxRecords <= 0 {
		maxRecords = 1000
	}
	start, ok1 := from[stream.AllPartitions]
	end, ok2 := to[stream.AllPartitions]
	if !ok1 || !ok2 {
		return nil, errors.New("nats: a range of a topic is one of stream sequences (stream.AllPartitions)")
	}
	r := &rangeReader{bus: b, topic: topic, next: start, end: end, max: maxRecords}
	if start >= end {
		return r, nil
	}
	ti, err := b.topic(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	r.cons, err = b.js.OrderedConsumer(ctx, ti.stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: uint64(start)})
	if err != nil {
		return nil, wrapErr("ordered consumer on "+topic, err)
	}
	return r, nil
}

type rangeReader struct {
	bus       *Bus
	topic     string
	cons      jetstream.Consumer
	next, end int64 // sequences
	max       int
}

func (r *rangeReader) Poll(ctx context.Context) ([]*stream.Record, error) {
	for r.next < r.end {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		batch, err := r.cons.Fetch(r.max, jetstream.FetchMaxWait(rangeFetchWait))
		if err != nil {
			return nil, wrapErr("fetch "+r.topic, err)
		}
		var out []*stream.Record
		for m := range batch.Messages() {
			rec := &stream.Record{}
			if err := decode(rec, r.topic, m); err != nil {
				r.bus.log.Warn("nats: odd message", "topic", r.topic, "subject", m.Subject(), "err", err)
			}
			if rec.Offset >= r.end {
				r.next = r.end
				break
			}
			r.next = rec.Offset + 1
			out = append(out, rec)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) && len(out) == 0 {
			return nil, wrapErr("fetch "+r.topic, err)
		}
		if len(out) > 0 {
			return out, nil
		}
		if err := r.sinceRemoved(ctx); err != nil {
			return nil, err
		}
	}
	return nil, io.EOF
}

// sinceRemoved ends the range early when the server no longer has its
// remaining sequences (retention removed them, or they were never
// stored): a fetch that waits for them would wait for good.
func (r *rangeReader) sinceRemoved(ctx context.Context) error {
	st, err := r.bus.js.Stream(ctx, streamName(r.topic))
	if err != nil {
		return wrapErr("stream info of "+r.topic, err)
	}
	if int64(st.CachedInfo().State.LastSeq) < r.next {
		r.next = r.end
	}
	return nil
}

func (r *rangeReader) Close() error { return nil }
