package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-dev/sluice/stream"
)

// EnsureTopics creates the topics of specs that do not exist yet, in one
// request, with their partition count (0: the brokers' num.partitions),
// retention.ms and max.message.bytes, Config.ReplicationFactor replicas
// and, when set, Config.MinInsyncReplicas as min.insync.replicas. Existing topics are left as they are; their partition count
// is read from the cluster. Every failing topic is reported.
func (b *Bus) EnsureTopics(ctx context.Context, specs ...stream.TopicSpec) error {
	if len(specs) == 0 {
		return nil
	}
	if b.closed.Load() {
		return fmt.Errorf("kafka: ensure topics: %w", stream.ErrClosed)
	}
	ctx, cancel := b.bound(ctx)
	defer cancel()

	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = int32(b.cfg.ProduceTimeout.Milliseconds())
	for _, s := range specs {
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic = s.Name
		t.NumPartitions = -1
		if s.Partitions > 0 {
			t.NumPartitions = s.Partitions
		}
		t.ReplicationFactor = b.cfg.ReplicationFactor
		if s.Retention > 0 {
			t.Configs = append(t.Configs, topicConfig("retention.ms", strconv.FormatInt(s.Retention.Milliseconds(), 10)))
		}
		if s.MaxRecordBytes > 0 {
			t.Configs = append(t.Configs, topicConfig("max.message.bytes", strconv.FormatInt(int64(s.MaxRecordBytes), 10)))
		}
		if n := b.cfg.MinInsyncReplicas; n > 0 {
			t.Configs = append(t.Configs, topicConfig("min.insync.replicas", strconv.Itoa(int(n))))
		}
		if s.Compact {
			t.Configs = append(t.Configs, topicConfig("cleanup.policy", "compact"))
		}
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, b.cl)
	if err != nil {
		return wrapErr("create topics", err)
	}

	var errs []error
	var existing []string
	created := map[string]int32{}
	for _, t := range resp.Topics {
		err := kerr.ErrorForCode(t.ErrorCode)
		switch {
		case err == nil:
			created[t.Topic] = t.NumPartitions // -1 before CreateTopics v5
		case errors.Is(err, kerr.TopicAlreadyExists):
			existing = append(existing, t.Topic)
		default:
			msg := ""
			if t.ErrorMessage != nil {
				msg = ": " + *t.ErrorMessage
			}
			errs = append(errs, wrapErr("create topic "+t.Topic, fmt.Errorf("%w%s", err, msg)))
		}
	}
	for _, s := range specs {
		if n, ok := created[s.Name]; ok && n <= 0 && s.Partitions > 0 {
			created[s.Name] = s.Partitions
		}
	}
	// A topic that exists may have been created a moment ago by another
	// process starting beside this one: wait for its partitions too.
	for _, t := range existing {
		created[t] = 0
	}
	if len(created) > 0 {
		if err := b.waitReady(ctx, created); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func topicConfig(name, value string) kmsg.CreateTopicsRequestTopicConfig {
	c := kmsg.NewCreateTopicsRequestTopicConfig()
	c.Name = name
	c.Value = &value
	return c
}

// waitReady waits until the brokers' metadata shows the topics
// with a leader for every partition: brokers learn of a new topic a moment
// after CreateTopics returns, and a producer that asks too early backs off
// for a second or more.
func (b *Bus) waitReady(ctx context.Context, created map[string]int32) error {
	names := make([]string, 0, len(created))
	for t := range created {
		names = append(names, t)
	}
	retry := readyBackoff()
	for {
		details, err := b.admin.ListTopics(ctx, names...)
		if err == nil {
			ready := 0
			for _, t := range names {
				d, ok := details[t]
				if !ok || d.Err != nil || len(d.Partitions) == 0 || (created[t] > 0 && len(d.Partitions) < int(created[t])) {
					continue
				}
				leaders := true
				for _, p := range d.Partitions {
					leaders = leaders && p.Err == nil && p.Leader >= 0
				}
				if leaders {
					ready++
				}
			}
			if ready == len(names) {
				b.mu.Lock()
				for _, t := range names {
					b.topics[t] = int32(len(details[t].Partitions))
				}
				b.mu.Unlock()
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return wrapErr(fmt.Sprintf("wait for topics %v", names), ctx.Err())
		case <-time.After(retry.NextBackOff()):
		}
	}
}

// readyBackoff gives the waits between waitReady's looks at the metadata:
// 20ms, doubling up to 250ms.
func readyBackoff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{InitialInterval: 20 * time.Millisecond, Multiplier: 2, MaxInterval: 250 * time.Millisecond}
}

// loadPartitions reads the partition counts of topics from the cluster.
func (b *Bus) loadPartitions(ctx context.Context, topics ...string) error {
	details, err := b.admin.ListTopics(ctx, topics...)
	if err != nil {
		return wrapErr("list topics", err)
	}
	var errs []error
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range topics {
		d, ok := details[t]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("kafka: topic %s: not in the cluster's metadata", t))
		case d.Err != nil:
			errs = append(errs, wrapErr("topic "+t, d.Err))
		default:
			b.topics[t] = int32(len(d.Partitions))
		}
	}
	return errors.Join(errs...)
}

// Partitions is the partition count of topic: known after EnsureTopics,
// else asked of the cluster (bounded by Config.ProduceTimeout); 0 if the
// topic does not exist or the cluster does not answer.
func (b *Bus) Partitions(topic string) int32 {
	b.mu.Lock()
	n, ok := b.topics[topic]
	b.mu.Unlock()
	if ok || b.closed.Load() {
		return n
	}
	ctx, cancel := b.bound(context.Background())
	defer cancel()
	if err := b.loadPartitions(ctx, topic); err != nil {
		b.log.Debug("kafka: partitions", "topic", topic, "err", err)
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.topics[topic]
}
