package stream

import (
	"context"
	"time"
)

// Tapper is a Bus that can read a topic without a consumer group: the
// operator's view of live records (sluice tap). A tap joins no group,
// commits nothing, creates nothing and leaves nothing behind on the bus,
// so that it never disturbs the pipeline.
type Tapper interface {
	// Tap reads every partition of topic from start: StartLatest (the
	// records written from now on), StartEarliest or StartAtTime. A topic
	// that does not exist is an error.
	Tap(ctx context.Context, topic string, start Start) (Tap, error)
}

// Tap is an open tap.
type Tap interface {
	// Poll blocks until records are available, ctx is done or the tap is
	// closed.
	Poll(ctx context.Context) ([]*Record, error)
	Close() error
}

// Admin is a Bus that describes its topics and the positions of consumer
// groups (sluice topics describe, sluice lag).
type Admin interface {
	// DescribeTopics describes each of names, in order; a topic that does
	// not exist has Exists false.
	DescribeTopics(ctx context.Context, names ...string) ([]TopicInfo, error)
	GroupLagger
}

// GroupLagger is a Bus that tells the positions of consumer groups (every
// bus of sluice: the aggregators ask it how far the workers are).
type GroupLagger interface {
	// GroupLag is the position and lag of group in each partition of
	// topics (Kafka, the in-memory bus), or in each topic as a whole (NATS
	// JetStream, where Partition is -1). It creates nothing: a group that
	// never consumed a topic has Committed -1 there.
	GroupLag(ctx context.Context, group string, topics ...string) ([]PartitionLag, error)
}

// TopicInfo is what the bus tells of a topic. Numbers the bus cannot tell
// are -1.
type TopicInfo struct {
	Name       string
	Exists     bool
	Partitions int32
	// Retention is how long records are kept; 0: without a time limit.
	Retention      time.Duration
	MaxRecordBytes int32
	Compact        bool
	// Compression is how the bus stores the records: Kafka's
	// compression.type ("producer": as the producer sent them), the
	// JetStream stream's ("none", "s2").
	Compression string
	Replicas    int
	// Records is the records kept (Kafka: the offsets between the first
	// and the end of each partition, which counts transaction markers and
	// compacted-away records too).
	Records int64
	// Bytes is the size on disk (Kafka: of the leader replicas, as the
	// brokers report it; -1 when they do not).
	Bytes int64
	// Config is the bus's own settings of the topic, by name.
	Config map[string]string
}

// PartitionLag is a consumer group's position in one partition.
type PartitionLag struct {
	Group     string
	Topic     string
	Partition int32 // -1: the whole topic (NATS JetStream)
	// Committed is the next record the group will read (Kafka: the
	// committed offset; NATS: the stream sequence after its acknowledged
	// floor); -1 when the group has no position there.
	Committed int64
	// End is the position after the last record (Kafka: the high
	// watermark; NATS: the stream's last sequence + 1).
	End int64
	// Lag is the records the group has not committed: from Committed (or
	// the oldest record kept, without a position) to End on Kafka; on NATS
	// the consumer's records not yet delivered plus InFlight.
	Lag int64
	// InFlight is the records delivered and not yet acknowledged (NATS
	// JetStream); always 0 on Kafka, where the group's members hold what
	// they polled without the broker knowing.
	InFlight int64
}
