// Package nats is the stream.Bus on NATS JetStream: New connects to a NATS
// server or cluster, NewEmbedded runs a single nats-server inside the
// process (file storage under a data directory, no TCP port unless asked
// for) so that a one-binary sluice needs no broker of its own.
//
// # Topics and partitions
//
// A topic is one JetStream stream. The stream is named after the topic
// with dots replaced by underscores (topic sluice.raw.metrics is stream
// sluice_raw_metrics) and listens on one subject per partition,
// "<topic>.<p>" for p in 0..n-1. EnsureTopics creates missing streams with
// file storage, limits retention (MaxAge = TopicSpec.Retention, oldest
// records discarded first) and MaxMsgSize = TopicSpec.MaxRecordBytes
// (headers count towards it). An existing stream is never changed: its
// partition count is read from its subjects.
//
// Produce publishes asynchronously and returns when every record has its
// PubAck, i.e. is stored (on a quorum of replicas in a cluster). A record's
// partition is Record.Partition, else a hash of its Key, else round robin.
// The key travels in header sluice-key (sluice-key-b64 when it is not
// printable ASCII) and a non-zero Timestamp in sluice-timestamp; Poll
// removes both again. Without a producer timestamp, Poll gives the time
// the server stored the record. Header values travel as text: NATS trims
// white space at their ends and turns CR and LF into spaces. Header keys
// starting with "Nats-" are refused, as they steer JetStream; Poll leaves
// them out of records other clients published with them (Nats-Msg-Id), so
// that such a record can be produced again, e.g. as a dead letter.
//
// Offset is the JetStream stream sequence: it numbers all partitions of a
// topic together, starting at 1. StartAtOffset therefore means "from this
// sequence on, in every partition". StartAtTime compares with the time the
// server stored each record, not with Record.Timestamp.
//
// # Groups and commits
//
// A group is one durable pull consumer per topic stream, named after the
// group, with explicit acks. Every member of the group pulls from the same
// consumer: JetStream hands each record to one member and spreads the
// records across members as they ask. Start matters only when the
// consumer is created; afterwards the group resumes where it is.
//
// Commit acknowledges each record individually and waits for the server's
// confirmation (one round trip per Commit). While a member holds records
// (polled, not committed) it sends an in-progress ack for each every
// AckWait/3, so a batch held for long (a sink retrying) is not handed to
// another member meanwhile, for at most Config.MaxHold (default 10m): a
// member that hangs lets its records go, they come again after AckWait and
// are reported to ConsumerConfig.OnHoldExpired. A failed Commit stops the
// in-progress acks too. Records a
// member holds when it closes or dies come again after AckWait
// (Config.AckWait, default 30s), to any member; so do uncommitted records
// after the process stops or the server restarts. Committed records do not come
// again (except after a crash of the server itself, which may lose the
// last moments of consumer state). Delivery is at least once: duplicates happen when a member
// dies or a Commit fails, and when Produce fails after the
// server stored some of the records (the caller retries the set).
// MaxAckPending bounds how many polled, uncommitted records a group holds
// per topic; at the bound Poll waits until commits make room.
//
// Order: JetStream keeps the order of a partition's records in the
// stream, and one member polling alone receives them in order until a
// redelivery. With several members, records of one partition are spread
// across them and processed concurrently, and a redelivered record comes
// after later ones: per-partition order is NOT kept. Stages that need it
// must run one member per group or order by Offset themselves.
//
// Records that MaxAge (or another limit) removes before the group's
// consumer delivered them are skipped by the server without a word; the
// consumer finds them from the sequences of its deliveries (lost.go),
// reports them to ConsumerConfig.OnLost and logs a warning.
//
// Lag is, per topic, the records not yet delivered to the group plus those
// delivered and not committed.
//
// # Failures
//
// The connection reconnects forever, backing off up to 2s. While it is
// down, Produce fails with stream.ErrUnavailable after PublishTimeout (it
// rides through a shorter outage: nats.go buffers what is published and
// sends it on reconnection), Ping fails, and Poll waits and retries.
// A record above the server's max payload or the topic's MaxRecordBytes
// fails with stream.ErrRecordTooLarge.
//
// NewEmbedded fails at once, naming the store, when nats-server cannot
// open it; when the server rebuilt a store at start (its warnings only
// say so) it logs that with the path: at error level when the last
// shutdown was clean (Close leaves a marker file in the data directory) or
// a checksum failed, else as a warning (the traces of a crash). A full
// store (EmbeddedConfig.MaxStore) fails Produce with stream.ErrUnavailable.
// So does a full disk, or another write error of the store: nats-server
// then refuses every later write to the stream until JetStream reopens the
// store, so a watch (storefault.go) notices the error, fails Produce to
// that stream at once (and Ping meanwhile), and restarts JetStream in the
// process when a probe write to the disk succeeds again.
// A group's consumer whose state file nats-server cannot decode fails
// NewEmbedded, naming its directory; one that nats-server loaded at
// another position than the last clean stop left it (an o.dat emptied,
// removed or misread), or not at all, is logged as a warning and counted
// (positions.go).
//
// The embedded server syncs its files every EmbeddedConfig.SyncInterval
// (nats-server's default: 2 minutes): records survive a crash of the
// process, not necessarily a power loss, unless EmbeddedConfig.SyncAlways
// is set. Config.Token, or User and Password, also guard the embedded
// server's listener; the process's own connection is in process and uses
// them too.
//
// Tap (stream.Tapper) reads a topic's stream through an ephemeral ordered
// consumer (in memory, no acks), deleted at Close and by the server after
// 30s of inactivity; no group's consumer is touched. DescribeTopics and
// GroupLag (stream.Admin) read stream and consumer info and create
// nothing. NewEmbedded locks its data directory (ErrDataDirInUse for a
// second server on it).
//
// Replicas (Config.Replicas) apply to the streams and state buckets the bus
// creates; a server that cannot place them (a single server asked for
// more than one) fails EnsureTopics with an error naming the setting,
// not retryable.
package nats
