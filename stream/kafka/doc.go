// Package kafka is the stream.Bus on Apache Kafka, with franz-go: New
// takes the seed brokers of a cluster; records go to topics created by
// EnsureTopics and are read by consumer groups.
//
// # Producing
//
// Produce hands every record to one franz-go client shared by the Bus and
// returns when the partition leader has acknowledged each one after all
// in-sync replicas have it (acks=all), or with the first failure. The
// producer is idempotent: franz-go's retries of a batch do not duplicate
// it, and the records of one partition are written in the order they were
// produced. A record whose Partition is set (>= 0) goes to that
// partition; otherwise to the hash of its Key (murmur2, as the Java client,
// so other Kafka clients agree), or without a key to a partition that
// changes with each batch. Key, Value, Headers and Timestamp are written
// as they are (a zero Timestamp becomes the time of Produce).
//
// While no broker answers, franz-go retries in the background; a record
// that is not acknowledged within Config.ProduceTimeout fails with
// stream.ErrUnavailable, as do the records after it in its partition. Some
// records of a failed Produce may have been written: the caller produces
// them again (at least once). A record larger than Config.MaxRecordBytes
// or the topic's max.message.bytes fails with stream.ErrRecordTooLarge.
//
// # Consuming and committing
//
// Each Consume opens a group member with a franz-go client of its own
// (cooperative-sticky balancing). Poll returns records of the member's
// partitions, in order within each partition. A partition without a
// committed position starts at ConsumerConfig.Start: the oldest retained
// record, the end, the first record at or after a time (by record
// timestamp), or an offset. A Start therefore replays a topic only for a
// new group (or after its positions expired, by default 7 days after the
// group was last active).
//
// Kafka's group position is one offset per partition: committing it
// commits every record before it. The member never commits a position
// past a record that was not passed to Commit: it tracks the records each
// Poll returned and moves a partition's position over the prefix of them
// that has been committed, so that Commit may come in any order, and a
// record that is never committed holds its partition's position there
// (everything after it comes again after a restart). Nothing is committed
// automatically that was not passed to Commit (franz-go's autocommit is
// limited to marked records). Commit waits until the group coordinator
// has stored the positions.
//
// The group rebalances only inside Poll (and Close): a member keeps its
// partitions while the caller processes what it polled, so that its
// commits are for partitions it owns. Before partitions move to another
// member their committed positions are written; polled and uncommitted
// records go to the new owner. A caller must therefore Poll again (or
// Close) within the group's rebalance timeout (60s) or be removed from the
// group. Delivery is at least once: a record polled and not committed
// before a rebalance, a crash or Close is delivered again.
//
// Lag is, over every partition of the consumed topics, the records after
// the group's committed position (the oldest retained record if none).
//
// Consumers read committed records only (isolation level read_committed):
// records of an aborted or still open transaction are never returned.
//
// # Exactly once
//
// ConsumeTransactional (stream.TransactionalBus) opens a group member
// whose client is also a transactional producer (franz-go's
// GroupTransactSession, KIP-447). Records produced with its Produce after
// a Poll belong to one Kafka transaction; Commit commits that transaction
// together with the positions of everything the Poll returned, so that
// the output and the input positions become visible at once or not at
// all. A failed Produce aborts the transaction (nothing of it is ever
// visible) and the caller produces the batch again in a new one. A Commit
// that cannot commit — the group rebalanced or the member lost its
// partitions since the Poll, it was fenced by a newer member with the
// same transactional id — aborts and fails; the records come again from
// Poll. A crashed member's open transaction is aborted when a member with
// the same transactional id starts (or by the broker after the
// transaction timeout, 40s), and its records are polled again from the
// committed positions. Each Poll's batch must be committed before the
// next Poll: a Poll abandons (aborts) an uncommitted batch.
//
// # Operator tools
//
// Tap (stream.Tapper) reads every partition of a topic with a client of
// its own and no group: a direct consumer from the end, the start or a
// time, that commits nothing. DescribeTopics and GroupLag (stream.Admin)
// read the metadata, topic configs, log directories and offsets with kadm;
// GroupLag is what Consumer.Lag sums.
//
// # Observability
//
// Config.Logger receives franz-go's log; Config.Registerer its metrics
// (plugin/kprom), one set per client labelled with its client id.
package kafka
