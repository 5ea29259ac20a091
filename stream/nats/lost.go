package nats

import (
	"github.com/nats-io/nats.go/jetstream"
)

// lossChain finds records that the stream removed (MaxAge, or another
// limit) before the group's JetStream consumer delivered them. The server
// does that silently: a consumer whose next stream sequence is below the
// stream's first one moves up to the first record left (nats-server
// consumer.go, getNextMsg and selectStartingSeqNo); only records already
// delivered and not acknowledged get an advisory (MSG_TERMINATED).
//
// Every delivery carries the consumer's delivery sequence, which grows by
// one per message the consumer hands out (first deliveries and
// redeliveries alike), and the record's stream sequence. The consumer
// delivers a stream's records in sequence order, skipping none that
// exist, so when this member sees delivery d+1 right after delivery d (no
// other member got one in between) and it is a first delivery, every
// stream sequence between the last one the consumer had passed and this
// one belongs to a record removed before the group got it. The chain
// starts from the consumer's Delivered pair when the member joins (a
// restarted stalled member counts what aged out while it was away) and
// from each first delivery; a redelivery keeps the position. When other
// members' deliveries come in between, the chain breaks until the next
// first delivery and a gap meanwhile is not counted: with one member per
// group (the embedded bus, the aggregator) the count is exact, with
// several a lower bound. Sequences deleted one by one inside the stream
// (not done by sluice) would count as removed too, which they are.
type lossChain struct {
	known  bool   // passed is the consumer's position after delivery dseq
	dseq   uint64 // the consumer's last delivery seen by this member
	passed uint64 // the highest stream sequence the consumer had passed then
}

// start sets the chain from the consumer's info when the member joins.
func (l *lossChain) start(info *jetstream.ConsumerInfo) {
	if info == nil {
		return
	}
	l.known, l.dseq, l.passed = true, info.Delivered.Consumer, info.Delivered.Stream
}

// observe takes the next delivery this member received and returns the
// number of records the consumer skipped over since the previous one.
func (l *lossChain) observe(md *jetstream.MsgMetadata) uint64 {
	d, s, first := md.Sequence.Consumer, md.Sequence.Stream, md.NumDelivered == 1
	var lost uint64
	chained := l.known && d == l.dseq+1
	switch {
	case first:
		if chained && s > l.passed+1 {
			lost = s - l.passed - 1
		}
		l.known, l.passed = true, max(s, l.passed)
	case !chained:
		l.known = false // a redelivery after deliveries we did not see: position unknown
	}
	l.dseq = d
	return lost
}

// checkLost runs f's source's chain over f and reports a gap.
func (c *consumer) checkLost(f fetched) {
	md, err := f.msg.Metadata()
	if err != nil {
		return
	}
	n := f.src.loss.observe(md)
	if n == 0 {
		return
	}
	from := md.Sequence.Stream - n
	// Sequences that failed writes of a full store used up held no
	// record.
	if n -= c.bus.unwrittenIn(streamName(f.src.topic), from, md.Sequence.Stream); n == 0 {
		return
	}
	c.bus.log.Warn("nats: records removed by the stream's limits (max age) before the group read them; reading resumes after them",
		"group", c.group, "topic", f.src.topic, "from_sequence", from, "to_sequence", md.Sequence.Stream, "records", n)
	if c.onLost != nil {
		c.onLost(f.src.topic, -1, int64(n))
	}
}
