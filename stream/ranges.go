package stream

import (
	"context"
	"time"
)

// AllPartitions is the partition of a position that numbers every
// partition of a topic together (NATS JetStream: one stream sequence).
const AllPartitions int32 = -1

// Positions are positions in a topic by partition, or under AllPartitions
// alone on a bus whose positions span the partitions.
type Positions map[int32]int64

// Key is the key of Positions that r's position counts under.
func (p Positions) Key(r *Record) int32 {
	if _, ok := p[AllPartitions]; ok {
		return AllPartitions
	}
	return r.Partition
}

// Ranger is a Bus that reads a range of a topic outside any consumer
// group: it commits nothing and joins no group, so the pipeline's groups
// are left as they are (sluice replay). The Kafka and NATS buses (the
// embedded one too) are.
type Ranger interface {
	// PositionsAt returns where the first record at or after t is in each
	// partition of topic, or the end (the position the next record will
	// take) where there is none; with t zero, the end of every partition.
	// Kafka looks the times up in the brokers' time index, by the
	// records' timestamps, per partition; NATS JetStream by the time the
	// server stored each record, under AllPartitions.
	PositionsAt(ctx context.Context, topic string, t time.Time) (Positions, error)
	// ReadRange reads topic from the positions of from up to, not
	// including, those of to (a key of from missing in to reads nothing).
	// maxRecords bounds a Poll (0: the bus default).
	ReadRange(ctx context.Context, topic string, from, to Positions, maxRecords int) (RangeReader, error)
}

// RangeReader reads one range of a topic.
type RangeReader interface {
	// Poll returns the next records of the range, each partition's in
	// position order, blocking until there are some; io.EOF once every
	// partition reached the end of its range.
	Poll(ctx context.Context) ([]*Record, error)
	Close() error
}
