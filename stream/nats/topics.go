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

// topicInfo is what the bus knows of a topic's stream.
type topicInfo struct {
	stream   string
	subjects []string // subjects[p] is partition p's subject, "<topic>.<p>"
}

// errUnknownTopic: the topic's stream does not exist.
var errUnknownTopic = errors.New("topic does not exist (EnsureTopics creates it)")

// streamName is the JetStream stream that holds topic: stream names may
// not contain dots.
func streamName(topic string) string { return strings.ReplaceAll(topic, ".", "_") }

// checkTopic rejects names that cannot be a NATS subject prefix and a
// stream name: empty tokens, wildcards, white space, path separators.
func checkTopic(topic string) error {
	if topic == "" {
		return errors.New("empty topic name")
	}
	for _, tok := range strings.Split(topic, ".") {
		if tok == "" {
			return fmt.Errorf("topic %q has an empty token", topic)
		}
	}
	if i := strings.IndexAny(topic, "*> \t\r\n/\\"); i >= 0 {
		return fmt.Errorf("topic %q contains %q", topic, topic[i])
	}
	return nil
}

func newTopicInfo(topic string, partitions int32) *topicInfo {
	t := &topicInfo{stream: streamName(topic), subjects: make([]string, partitions)}
	for p := range t.subjects {
		t.subjects[p] = topic + "." + strconv.Itoa(p)
	}
	return t
}

// topicFromStream reads the partition count of an existing stream from its
// subjects, which must be "<topic>.0" to "<topic>.<n-1>".
func topicFromStream(topic string, cfg *jetstream.StreamConfig) (*topicInfo, error) {
	seen := make([]bool, len(cfg.Subjects))
	for _, s := range cfg.Subjects {
		p, err := partitionOf(topic, s)
		if err != nil || int(p) >= len(seen) || seen[p] {
			return nil, fmt.Errorf("stream %s has subjects %v, not %s.0 to %s.<n-1>", cfg.Name, cfg.Subjects, topic, topic)
		}
		seen[p] = true
	}
	if len(seen) == 0 {
		return nil, fmt.Errorf("stream %s has no subjects", cfg.Name)
	}
	return newTopicInfo(topic, int32(len(seen))), nil
}

// partitionOf parses the partition from a subject "<topic>.<p>".
func partitionOf(topic, subject string) (int32, error) {
	if len(subject) <= len(topic)+1 || subject[:len(topic)] != topic || subject[len(topic)] != '.' {
		return 0, fmt.Errorf("subject %q is not in topic %q", subject, topic)
	}
	p, err := strconv.ParseInt(subject[len(topic)+1:], 10, 32)
	if err != nil || p < 0 {
		return 0, fmt.Errorf("subject %q has no partition number", subject)
	}
	return int32(p), nil
}

// EnsureTopics creates a stream for each topic that has none: file
// storage, subjects "<topic>.<p>", MaxAge = Retention, MaxMsgSize =
// MaxRecordBytes (headers count towards it), old records discarded first.
// Existing streams are left as they are; their partition count is read
// from their subjects.
func (b *Bus) EnsureTopics(ctx context.Context, specs ...stream.TopicSpec) error {
	if b.closed.Load() {
		return fmt.Errorf("nats: ensure topics: %w", stream.ErrClosed)
	}
	for _, spec := range specs {
		if err := checkTopic(spec.Name); err != nil {
			return fmt.Errorf("nats: ensure topics: %w", err)
		}
		t, err := b.ensureTopic(ctx, spec)
		if err != nil {
			return wrapErr("ensure topic "+spec.Name, err)
		}
		b.mu.Lock()
		b.topics[spec.Name] = t
		b.mu.Unlock()
	}
	return nil
}

func (b *Bus) ensureTopic(ctx context.Context, spec stream.TopicSpec) (*topicInfo, error) {
	name := streamName(spec.Name)
	st, err := b.js.Stream(ctx, name)
	if err == nil {
		return topicFromStream(spec.Name, &st.CachedInfo().Config)
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, err
	}
	partitions := max(spec.Partitions, 1)
	if limit := b.nc.MaxPayload(); spec.MaxRecordBytes > 0 && int64(spec.MaxRecordBytes) > limit {
		b.log.Warn("nats: topic accepts larger records than the server's max payload",
			"topic", spec.Name, "max_record_bytes", spec.MaxRecordBytes, "max_payload", limit)
	}
	cfg := jetstream.StreamConfig{
		Name:        name,
		Description: "sluice topic " + spec.Name,
		Subjects:    newTopicInfo(spec.Name, partitions).subjects,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      spec.Retention,
		MaxMsgSize:  spec.MaxRecordBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
	}
	st, err = b.js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Another process created it meanwhile, maybe differently: keep theirs.
		st, err = b.js.Stream(ctx, name)
	}
	if err != nil && b.cfg.Replicas > 1 {
		// A single server, or a cluster with fewer JetStream servers
		// than replicas, cannot place the stream. A single server never
		// will: that error must not read as retryable.
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeReplicasNotSupported {
			err = errors.New(apiErr.Description)
		}
		return nil, fmt.Errorf("create stream %s with %d replicas (bus.nats.replicas; needs a JetStream cluster of at least %d servers): %w",
			name, b.cfg.Replicas, b.cfg.Replicas, err)
	}
	if err != nil {
		return nil, err
	}
	b.log.Info("nats: created stream", "topic", spec.Name, "stream", name, "partitions", partitions)
	return topicFromStream(spec.Name, &st.CachedInfo().Config)
}

// Partitions is the partition count of topic if EnsureTopics, Produce or
// Consume has seen it, else 0.
func (b *Bus) Partitions(topic string) int32 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if t := b.topics[topic]; t != nil {
		return int32(len(t.subjects))
	}
	return 0
}

// topic returns what is known of topic, asking the server the first time.
func (b *Bus) topic(ctx context.Context, topic string) (*topicInfo, error) {
	b.mu.RLock()
	t := b.topics[topic]
	b.mu.RUnlock()
	if t != nil {
		return t, nil
	}
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	st, err := b.js.Stream(ctx, streamName(topic))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%s: %w", topic, errUnknownTopic)
	}
	if err != nil {
		return nil, err
	}
	if t, err = topicFromStream(topic, &st.CachedInfo().Config); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.topics[topic] = t
	b.mu.Unlock()
	return t, nil
}

// errCodeReplicasNotSupported is nats-server's JSStreamReplicasNotSupportedErr
// ("replicas > 1 not supported in non-clustered mode"), which nats.go has
// no name for.
const errCodeReplicasNotSupported jetstream.ErrorCode = 10074
