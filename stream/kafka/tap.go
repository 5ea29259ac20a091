package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/stream"
)

var _ stream.Tapper = (*Bus)(nil)

// tap reads a topic's partitions directly, with a client of its own and
// without a consumer group: nothing is committed, no group is created.
type tap struct {
	cl     *kgo.Client
	topic  string
	closed atomic.Bool
}

// Tap reads every partition of topic from start, as a direct consumer
// (no group, no commits, read_committed like the pipeline's consumers).
// The topic must exist: Tap never creates it.
func (b *Bus) Tap(ctx context.Context, topic string, start stream.Start) (stream.Tap, error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("kafka: tap: %w", stream.ErrClosed)
	}
	switch start.Kind {
	case stream.StartEarliest, stream.StartLatest:
	case stream.StartAtTime:
		if start.Time.IsZero() {
			return nil, errors.New("kafka: tap: start at time: time is required")
		}
	default:
		return nil, fmt.Errorf("kafka: tap: start kind %d is not supported", start.Kind)
	}
	ctx, cancel := b.bound(ctx)
	defer cancel()
	details, err := b.admin.ListTopics(ctx, topic)
	if err != nil {
		return nil, wrapErr("tap: list topics", err)
	}
	if d, ok := details[topic]; !ok || d.Err != nil {
		return nil, fmt.Errorf("kafka: tap: topic %s does not exist", topic)
	}
	opts := append(b.cfg.clientOpts(b.cfg.ClientID+"-tap"),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(startOffset(start)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: tap: %w", err)
	}
	return &tap{cl: cl, topic: topic}, nil
}

// Poll returns the next fetched records; a fetch error without records is
// returned.
func (t *tap) Poll(ctx context.Context) ([]*stream.Record, error) {
	for {
		if t.closed.Load() {
			return nil, fmt.Errorf("kafka: tap: %w", stream.ErrClosed)
		}
		fetches := t.cl.PollFetches(ctx)
		if fetches.IsClientClosed() {
			return nil, fmt.Errorf("kafka: tap: %w", stream.ErrClosed)
		}
		if err := ctx.Err(); err != nil && fetches.NumRecords() == 0 {
			return nil, err
		}
		var fetchErr error
		for _, fe := range fetches.Errors() {
			if !errors.Is(fe.Err, context.Canceled) && !errors.Is(fe.Err, context.DeadlineExceeded) && fetchErr == nil {
				fetchErr = wrapErr(fmt.Sprintf("tap %s[%d]", fe.Topic, fe.Partition), fe.Err)
			}
		}
		if fetches.NumRecords() == 0 {
			if fetchErr != nil {
				return nil, fetchErr
			}
			continue
		}
		var out []*stream.Record
		fetches.EachRecord(func(r *kgo.Record) {
			sr := &stream.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
			for _, h := range r.Headers {
				sr.Headers = append(sr.Headers, stream.Header{Key: h.Key, Value: h.Value})
			}
			out = append(out, sr)
		})
		return out, nil
	}
}

func (t *tap) Close() error {
	if !t.closed.Swap(true) {
		t.cl.Close()
	}
	return nil
}
