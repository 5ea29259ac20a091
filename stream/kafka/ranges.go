package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/stream"
)

var _ stream.Ranger = (*Bus)(nil)

// PositionsAt looks t up in the brokers' time index (ListOffsets after a
// millisecond, by the records' timestamps) for every partition of topic;
// t zero gives the end offsets. A partition with no record at or after t
// gets its end offset.
func (b *Bus) PositionsAt(ctx context.Context, topic string, t time.Time) (stream.Positions, error) {
	var (
		listed kadm.ListedOffsets
		err    error
	)
	if t.IsZero() {
		listed, err = b.admin.ListEndOffsets(ctx, topic)
	} else {
		listed, err = b.admin.ListOffsetsAfterMilli(ctx, t.UnixMilli(), topic)
	}
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, wrapErr("list offsets of "+topic, err)
	}
	pos := stream.Positions{}
	for p, o := range listed[topic] {
		if o.Offset < 0 {
			return nil, fmt.Errorf("kafka: no offset found in %s[%d] at %s", topic, p, t.Format(time.RFC3339))
		}
		pos[p] = o.Offset
	}
	if len(pos) == 0 {
		return nil, fmt.Errorf("kafka: topic %s not found", topic)
	}
	return pos, nil
}

// ReadRange reads the range with a client of its own that consumes the
// partitions directly: it belongs to no group and commits nothing.
func (b *Bus) ReadRange(ctx context.Context, topic string, from, to stream.Positions, maxRecords int) (stream.RangeReader, error) {
	if maxRecords <= 0 {
		maxRecords = defaultMaxPollRecords
	}
	r := &rangeReader{topic: topic, to: map[int32]int64{}, max: maxRecords}
	parts := map[int32]kgo.Offset{}
	for p, off := range from {
		end, ok := to[p]
		if !ok || off >= end {
			continue
		}
		parts[p] = kgo.NewOffset().At(off)
		r.to[p] = end
	}
	if len(parts) == 0 {
		return r, nil
	}
	opts := append(b.cfg.clientOpts(b.cfg.ClientID+"-replay"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A range of a topic written in transactions (the processed
		// topics with exactly_once) may end on a transaction marker,
		// which the client otherwise skips without a word: the range
		// would never see its last offset.
		kgo.KeepControlRecords())
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: client: %w", err)
	}
	r.cl = cl
	return r, nil
}

// rangeReader reads partitions up to their end offsets.
type rangeReader struct {
	topic string
	cl    *kgo.Client
	to    map[int32]int64 // the partitions not done yet and their ends
	max   int
}

func (r *rangeReader) Poll(ctx context.Context) ([]*stream.Record, error) {
	for len(r.to) > 0 {
		fetches := r.cl.PollRecords(ctx, r.max)
		if fetches.IsClientClosed() {
			return nil, fmt.Errorf("kafka: poll: %w", stream.ErrClosed)
		}
		var fetchErr error
		for _, fe := range fetches.Errors() {
			if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
				continue
			}
			var loss *kgo.ErrDataLoss
			if !errors.As(fe.Err, &loss) && fetchErr == nil {
				fetchErr = wrapErr(fmt.Sprintf("fetch %s[%d]", fe.Topic, fe.Partition), fe.Err)
			}
		}
		var out []*stream.Record
		var done []int32
		fetches.EachRecord(func(kr *kgo.Record) {
			end, ok := r.to[kr.Partition]
			if !ok {
				return // done (a fetch goes on beyond the range)
			}
			if kr.Offset+1 >= end {
				// The last of the range, or beyond it: the end of the
				// range was removed (retention) before it was read.
				delete(r.to, kr.Partition)
				done = append(done, kr.Partition)
			}
			if kr.Attrs.IsControl() || kr.Offset >= end {
				return
			}
			sr := &stream.Record{Topic: kr.Topic, Partition: kr.Partition, Offset: kr.Offset, Key: kr.Key, Value: kr.Value, Timestamp: kr.Timestamp}
			for _, h := range kr.Headers {
				sr.Headers = append(sr.Headers, stream.Header{Key: h.Key, Value: h.Value})
			}
			out = append(out, sr)
		})
		if len(done) > 0 {
			r.cl.PauseFetchPartitions(map[string][]int32{r.topic: done})
		}
		if len(out) > 0 {
			return out, nil
		}
		if fetchErr != nil {
			return nil, fetchErr
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return nil, io.EOF
}

func (r *rangeReader) Close() error {
	if r.cl != nil {
		r.cl.Close()
	}
	return nil
}
