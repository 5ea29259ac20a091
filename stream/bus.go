package stream

import (
	"context"
	"errors"
	"time"
)

// Producer writes records to the bus.
type Producer interface {
	// Produce writes recs and returns only once the bus has durably
	// acknowledged every one of them, or with the first error. On error some
	// records may have been written (the caller retries the whole set:
	// delivery is at least once). Produce may be called concurrently.
	Produce(ctx context.Context, recs ...*Record) error
}

// Consumer reads records as one member of a consumer group.
type Consumer interface {
	// Poll blocks until at least one record is available, ctx is done or the
	// consumer is closed. Records of one partition come in order to one
	// member on Kafka; on NATS JetStream the members of a group pull from
	// one consumer, so order holds only with a single member.
	Poll(ctx context.Context) ([]*Record, error)
	// Commit marks recs as processed. A position is never committed ahead
	// of a record that was not passed to Commit: records may be committed
	// in any order, and a record never committed holds its partition's
	// position (Kafka) or is delivered again after the ack wait (NATS).
	Commit(ctx context.Context, recs ...*Record) error
	// Lag is the number of records in the consumed topics that the group
	// has not committed yet.
	Lag(ctx context.Context) (int64, error)
	// Close commits what was marked, leaves the group and releases
	// resources.
	Close() error
}

// Unpinner is a Consumer whose polled records can let go of their key,
// value and headers once handled, keeping what Commit needs: a stateful
// stage holds the records it handled until its next checkpoint
// (stage.Config.Checkpoint), and their values (on Kafka, slices of a
// poll's decompressed batches) would stay in memory with them.
type Unpinner interface {
	Unpin(recs ...*Record)
}

// Bus is what the pipeline needs of a message bus.
type Bus interface {
	Producer
	// EnsureTopics creates the topics that do not exist yet. Existing
	// topics are left as they are.
	EnsureTopics(ctx context.Context, specs ...TopicSpec) error
	// Partitions is the partition count of topic, known after
	// EnsureTopics; 0 if unknown.
	Partitions(topic string) int32
	// Consume joins a consumer group.
	Consume(cfg ConsumerConfig) (Consumer, error)
	// Ping checks that the bus answers and, where the bus can tell (the
	// embedded bus: its store is writable), that it takes records.
	Ping(ctx context.Context) error
	Close() error
}

// TransactionalBus is a Bus that can make producing and committing one
// atomic step (Kafka transactions): exactly-once consume–transform–produce.
type TransactionalBus interface {
	Bus
	// ConsumeTransactional joins a group like Consume; the returned
	// consumer is also a Producer whose records become visible, together
	// with the commit of the polled positions, only at Commit.
	// transactionalID identifies the producer across restarts: it must be
	// unique among the live consumers and should stay the same when a
	// consumer is restarted, so that the new one fences the old one.
	ConsumeTransactional(cfg ConsumerConfig, transactionalID string) (TxConsumer, error)
}

// TxConsumer is a Consumer whose Produce writes inside the transaction of
// the current Poll. Commit makes the records produced since the Poll
// visible and commits the polled positions, at once; a Commit that fails
// leaves neither, and the records come again from Poll. Each Poll's batch
// must be committed before the next Poll: polling again abandons it (its
// records come again).
type TxConsumer interface {
	Consumer
	Producer // produces inside the transaction of the current poll
}

// TopicSpec describes a topic to create.
type TopicSpec struct {
	Name       string
	Partitions int32
	// Retention is how long records are kept; 0 keeps the bus default.
	Retention time.Duration
	// MaxRecordBytes is the largest record the topic accepts (on NATS
	// JetStream headers count towards it); 0 keeps the bus default.
	MaxRecordBytes int32
	// Compact keeps only the last record of each key (Kafka log
	// compaction); the buses without compaction ignore it.
	Compact bool
}

// StartKind says where a consumer group with no committed position begins.
type StartKind uint8

const (
	StartEarliest StartKind = iota // the oldest record still retained
	StartLatest                    // only records written after joining
	StartAtTime                    // the first record at or after Start.Time
	StartAtOffset                  // Start.Offset in every partition
)

// Start is where a consumer group with no committed position begins.
type Start struct {
	Kind   StartKind
	Time   time.Time
	Offset int64
}

// ConsumerConfig configures Consume.
type ConsumerConfig struct {
	Group  string
	Topics []string
	Start  Start
	// MaxPollRecords bounds how many records one Poll returns; 0 means
	// the bus default.
	MaxPollRecords int
	// MaxPollBytes bounds the bytes the consumer reads from the bus for
	// one Poll, and so, with MaxPollRecords, what a stage holds of the
	// bus at once, however large the backlog; 0 means the bus default.
	// Kafka: the size of a fetch as stored on the brokers (compressed:
	// decompressed records take the codec's ratio more), and at most one
	// fetch buffered beside the records in hand (fetch.max.bytes,
	// max.partition.fetch.bytes up to 1 MiB, one fetch at a time). NATS
	// JetStream: the message bytes of the pull requests of one Poll
	// (never below the server's largest message).
	MaxPollBytes int
	// InOrder asks that every partition's records come in offset order,
	// also those a crashed member left unacknowledged: a stateful stage
	// whose state depends on the order of a series' points (the
	// aggregator) needs it. Kafka delivers a partition in order anyway.
	// NATS JetStream redelivers unacknowledged records after AckWait,
	// behind newer ones; with InOrder, a member joining a group whose
	// consumer has records pending restarts it from its first
	// unacknowledged record (records acknowledged beyond it come again).
	// Only for a group of one member on NATS.
	InOrder bool
	// OnRevoked, when set, is called with partitions of topic this member
	// no longer reads (revoked or lost in a rebalance), before another
	// member can read them. A stateful stage drops what it holds of them:
	// their next owner resumes from the committed positions. It is called
	// during Poll (or Close), from the bus's goroutine on Kafka, and must
	// not call the consumer. Buses without partition ownership (NATS
	// JetStream: the members pull from one consumer) never call it, nor
	// does Kafka's transactional consumer.
	OnRevoked func(topic string, partitions []int32)
	// OnLost, when set, is called with records of topic that the bus
	// removed (retention, size limits) before this group read them: the
	// group's position fell behind the oldest record still kept, and
	// reading resumes there. partition is -1 when the bus cannot tell
	// which partitions they were in (NATS JetStream: a stream sequence
	// spans them). It is called during Poll and must not call the
	// consumer. The bus also logs each loss as a warning.
	OnLost func(topic string, partition int32, records int64)
	// OnHoldExpired, when set, is called with records of topic that this
	// member polled and held uncommitted for longer than the bus lets a
	// member keep records (NATS JetStream: Config.MaxHold; a stage that
	// hangs): the bus stops extending their ack wait, so that they are
	// delivered again (to any member of the group) after it. It is called
	// from the bus's goroutine and must not call the consumer. The bus
	// also logs a warning. Buses without an ack wait (Kafka, memory)
	// never call it.
	OnHoldExpired func(topic string, records int64)
}

// StateStore keeps named values durably beside the bus: the checkpoints of
// stateful stages, so that a partition's state survives its member and
// follows the partition to its next owner. Values may be larger than a
// record of the bus.
type StateStore interface {
	// Put stores value under key, replacing the previous one, and returns
	// once it is durable.
	Put(ctx context.Context, key string, value []byte) error
	// Get returns the value last Put under key, or nil when there is none.
	Get(ctx context.Context, key string) ([]byte, error)
}

// StatefulBus is a Bus that can keep state (every bus of sluice).
type StatefulBus interface {
	Bus
	// StateStore opens (creating if needed) the store called name.
	StateStore(ctx context.Context, name string) (StateStore, error)
}

// Errors shared by every bus implementation. Implementations wrap them so
// that callers can test with errors.Is.
var (
	// ErrUnavailable: the bus could not be reached or did not acknowledge
	// in time. Retryable.
	ErrUnavailable = errors.New("bus unavailable")
	// ErrRecordTooLarge: the record exceeds the topic's maximum size.
	// Not retryable as it is.
	ErrRecordTooLarge = errors.New("record too large for the bus")
	// ErrClosed: the bus or consumer was closed.
	ErrClosed = errors.New("bus closed")
)

// IsRetryable reports whether an operation that failed with err may succeed
// if tried again unchanged.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}
