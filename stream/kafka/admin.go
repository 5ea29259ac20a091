package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluice-dev/sluice/stream"
)

var _ stream.Admin = (*Bus)(nil)

// DescribeTopics describes names from the cluster's metadata, the topics'
// configs (DescribeConfigs), their offsets and the log directories of the
// brokers (DescribeLogDirs; Bytes is -1 when no broker answers it).
func (b *Bus) DescribeTopics(ctx context.Context, names ...string) ([]stream.TopicInfo, error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("kafka: describe topics: %w", stream.ErrClosed)
	}
	ctx, cancel := b.bound(ctx)
	defer cancel()
	details, err := b.admin.ListTopics(ctx, names...)
	if err != nil {
		return nil, wrapErr("describe topics: metadata", err)
	}
	out := make([]stream.TopicInfo, len(names))
	var exist []string
	for i, name := range names {
		out[i] = stream.TopicInfo{Name: name, Records: -1, Bytes: -1}
		d, ok := details[name]
		if !ok || d.Err != nil {
			continue
		}
		exist = append(exist, name)
		out[i].Exists = true
		out[i].Partitions = int32(len(d.Partitions))
		for _, p := range d.Partitions {
			out[i].Replicas = max(out[i].Replicas, len(p.Replicas))
		}
	}
	if len(exist) == 0 {
		return out, nil
	}
	configs, err := b.admin.DescribeTopicConfigs(ctx, exist...)
	if err != nil {
		return nil, wrapErr("describe topics: configs", err)
	}
	starts, err := b.admin.ListStartOffsets(ctx, exist...)
	if err != nil {
		return nil, wrapErr("describe topics: start offsets", err)
	}
	ends, err := b.admin.ListEndOffsets(ctx, exist...)
	if err != nil {
		return nil, wrapErr("describe topics: end offsets", err)
	}
	set := kadm.TopicsSet{}
	for _, name := range exist {
		for _, p := range details[name].Partitions {
			set.Add(name, p.Partition)
		}
	}
	// Sizes are per replica: count the leader's, the size of the data.
	dirs, dirsErr := b.admin.DescribeAllLogDirs(ctx, set)
	var errs []error
	for i := range out {
		t := &out[i]
		if !t.Exists {
			continue
		}
		if rc, err := configs.On(t.Name, nil); err == nil && rc.Err == nil {
			t.Config = map[string]string{}
			for _, c := range rc.Configs {
				t.Config[c.Key] = c.MaybeValue()
			}
			t.Retention = msConfig(t.Config["retention.ms"])
			if n, err := strconv.ParseInt(t.Config["max.message.bytes"], 10, 32); err == nil {
				t.MaxRecordBytes = int32(n)
			}
			t.Compact = slices.Contains(strings.Split(strings.ReplaceAll(t.Config["cleanup.policy"], " ", ""), ","), "compact")
			t.Compression = t.Config["compression.type"]
		} else {
			errs = append(errs, fmt.Errorf("kafka: describe topic %s: configs: %v", t.Name, errors.Join(err, rc.Err)))
		}
		t.Records = 0
		ends.Each(func(e kadm.ListedOffset) {
			if e.Topic != t.Name {
				return
			}
			start := int64(0)
			if s, ok := starts.Lookup(e.Topic, e.Partition); ok && s.Err == nil {
				start = s.Offset
			}
			t.Records += max(0, e.Offset-start)
		})
		if dirsErr != nil {
			continue
		}
		size, seen := int64(0), false
		for _, p := range details[t.Name].Partitions {
			if d, ok := dirs[p.Leader]; ok {
				if lp, ok := d.LookupPartition(t.Name, p.Partition); ok {
					size += lp.Size
					seen = true
				}
			}
		}
		if seen {
			t.Bytes = size
		}
	}
	return out, errors.Join(errs...)
}

// msConfig reads a Kafka duration in milliseconds; -1 (no limit) is 0.
func msConfig(v string) time.Duration {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

// GroupLag is group's committed position in every partition of topics
// (OffsetFetch; nothing is created), against the partitions' start and
// end offsets: the lag counts from the committed offset, or from the
// oldest record kept where the group has committed none, as Consumer.Lag.
func (b *Bus) GroupLag(ctx context.Context, group string, topics ...string) ([]stream.PartitionLag, error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("kafka: group lag: %w", stream.ErrClosed)
	}
	ctx, cancel := b.bound(ctx)
	defer cancel()
	committed, err := b.admin.FetchOffsetsForTopics(ctx, group, topics...)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return nil, wrapErr("lag: committed offsets of "+group, err)
	}
	starts, err := b.admin.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, wrapErr("lag: start offsets", err)
	}
	ends, err := b.admin.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, wrapErr("lag: end offsets", err)
	}
	var out []stream.PartitionLag
	ends.Each(func(end kadm.ListedOffset) {
		l := stream.PartitionLag{Group: group, Topic: end.Topic, Partition: end.Partition, Committed: -1, End: end.Offset}
		pos := int64(0)
		if s, ok := starts.Lookup(end.Topic, end.Partition); ok {
			pos = s.Offset
		}
		if o, ok := committed.Lookup(end.Topic, end.Partition); ok && o.At >= 0 {
			l.Committed = o.At
			pos = max(pos, o.At)
		}
		l.Lag = max(0, end.Offset-pos)
		out = append(out, l)
	})
	slices.SortFunc(out, func(a, b stream.PartitionLag) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out, nil
}
