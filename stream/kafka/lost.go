package kafka

import (
	"errors"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// lossTracker finds records that retention removed before the group read
// them. franz-go resumes at the oldest retained record when a position
// falls below it, silently: it reports *kgo.ErrDataLoss only when the
// broker lost data another way (a truncated log), not for retention. So
// the tracker keeps, per partition, the offset the group reads next (the
// group's committed offset when the partition was assigned, then one past
// each record polled) and compares it with the first record of each fetch
// and the log start offset the broker sends with it:
//
//	lost = min(log start, first record) - next
//
// Records between the log start and the first record are still in the
// log and were skipped on purpose (transaction markers, aborted records),
// so they do not count; a record below the log start is gone. With
// transactions, the markers of the removed range count too (one offset
// per transaction): the number is an upper bound by that much.
type lossTracker struct {
	mu   sync.Mutex
	next map[topicPartition]int64
}

// observe checks the fetched records against where the group stood and
// calls report for each gap; it then moves the positions past them.
// committed gives the group's committed offset of a partition not seen
// since it was assigned (false: none, the group starts fresh there).
func (l *lossTracker) observe(fetches kgo.Fetches, committed func(topic string, partition int32) (int64, bool),
	report func(topic string, partition int32, from, to int64)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.next == nil {
		l.next = map[topicPartition]int64{}
	}
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		tp := topicPartition{p.Topic, p.Partition}
		var loss *kgo.ErrDataLoss
		if errors.As(p.Err, &loss) && loss.ResetTo > loss.ConsumedTo {
			// The broker lost data and franz-go skipped ahead over it.
			report(p.Topic, p.Partition, loss.ConsumedTo, loss.ResetTo)
			l.next[tp] = loss.ResetTo
		}
		if len(p.Records) == 0 {
			return
		}
		next, ok := l.next[tp]
		if !ok {
			next, ok = committed(p.Topic, p.Partition)
		}
		if first := p.Records[0].Offset; ok && p.LogStartOffset >= 0 {
			if gone := min(p.LogStartOffset, first); gone > next {
				report(p.Topic, p.Partition, next, gone)
			}
		}
		l.next[tp] = p.Records[len(p.Records)-1].Offset + 1
	})
}

// drop forgets partitions that left this member: their next owner starts
// from the committed positions, and so will this member if they return.
func (l *lossTracker) drop(parts map[string][]int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			delete(l.next, topicPartition{topic, p})
		}
	}
}

// checkLost runs the tracker over fetches: each gap is logged and handed
// to the group's OnLost.
func (c *consumer) checkLost(fetches kgo.Fetches) {
	c.loss.observe(fetches, c.committed, func(topic string, partition int32, from, to int64) {
		c.b.log.Warn("kafka: records removed by retention before the group read them; reading resumes after them",
			"group", c.group, "topic", topic, "partition", partition, "from_offset", from, "to_offset", to, "records", to-from)
		if c.onLost != nil {
			c.onLost(topic, partition, to-from)
		}
	})
}

// committed is the group's committed offset of a partition, as the client
// fetched it when the partition was assigned (or committed it since).
func (c *consumer) committed(topic string, partition int32) (int64, bool) {
	o, ok := c.cl.CommittedOffsets()[topic][partition]
	return o.Offset, ok && o.Offset >= 0
}
