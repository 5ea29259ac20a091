package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/stream"
)

var _ stream.Admin = (*Bus)(nil)

// DescribeTopics describes the streams of names from their stream info:
// partitions (subjects), MaxAge, MaxMsgSize, replicas, compression, and
// the messages and bytes the stream holds.
func (b *Bus) DescribeTopics(ctx context.Context, names ...string) ([]stream.TopicInfo, error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("nats: describe topics: %w", stream.ErrClosed)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	out := make([]stream.TopicInfo, len(names))
	for i, name := range names {
		out[i] = stream.TopicInfo{Name: name, Records: -1, Bytes: -1}
		if err := checkTopic(name); err != nil {
			return nil, fmt.Errorf("nats: describe topics: %w", err)
		}
		st, err := b.js.Stream(ctx, streamName(name))
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, wrapErr("describe topic "+name, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return nil, wrapErr("describe topic "+name, err)
		}
		t := &out[i]
		c := info.Config
		t.Exists = true
		t.Partitions = int32(len(c.Subjects))
		t.Retention = c.MaxAge
		t.MaxRecordBytes = c.MaxMsgSize
		t.Compression = strings.ToLower(c.Compression.String())
		t.Replicas = c.Replicas
		t.Records = int64(info.State.Msgs)
		t.Bytes = int64(info.State.Bytes)
		t.Config = map[string]string{
			"stream":    c.Name,
			"storage":   c.Storage.String(),
			"retention": c.Retention.String(),
			"discard":   c.Discard.String(),
			"max_bytes": strconv.FormatInt(c.MaxBytes, 10),
			"max_msgs":  strconv.FormatInt(c.MaxMsgs, 10),
			"consumers": strconv.Itoa(info.State.Consumers),
		}
	}
	return out, nil
}

// GroupLag reads the info of group's durable consumer on each topic's
// stream (nothing is created): Lag is the records not yet delivered to
// the group plus those delivered and not acknowledged (InFlight), as
// Consumer.Lag; a group without a consumer on a topic has Committed -1 and
// every record kept as lag.
func (b *Bus) GroupLag(ctx context.Context, group string, topics ...string) ([]stream.PartitionLag, error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("nats: group lag: %w", stream.ErrClosed)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	var out []stream.PartitionLag
	for _, topic := range topics {
		t, err := b.topic(ctx, topic)
		if err != nil {
			return nil, wrapErr("lag "+topic, err)
		}
		st, err := b.js.Stream(ctx, t.stream)
		if err != nil {
			return nil, wrapErr("lag "+topic, err)
		}
		sinfo, err := st.Info(ctx)
		if err != nil {
			return nil, wrapErr("lag "+topic, err)
		}
		l := stream.PartitionLag{Group: group, Topic: topic, Partition: -1, Committed: -1, End: int64(sinfo.State.LastSeq) + 1}
		cons, err := b.js.Consumer(ctx, t.stream, consumerName(group))
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			l.Lag = int64(sinfo.State.Msgs)
		case err != nil:
			return nil, wrapErr("lag "+topic, err)
		default:
			info := cons.CachedInfo()
			l.Committed = int64(info.AckFloor.Stream) + 1
			l.InFlight = int64(info.NumAckPending)
			l.Lag = int64(info.NumPending) + l.InFlight
		}
		out = append(out, l)
	}
	return out, nil
}
