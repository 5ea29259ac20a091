package kafka

import (
	"errors"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/stream"
)

// tracker turns commits of individual records into group positions. Kafka
// commits a position per partition, which covers every record before it;
// so a partition's position may only move past records that were all
// committed. tracker keeps, per partition, the records polled and not yet
// covered, in offset order, and moves the position over the committed
// prefix. Commits may thus come in any order.
type tracker struct {
	mu    sync.Mutex
	parts map[topicPartition]*pending
}

type topicPartition struct {
	topic     string
	partition int32
}

// pending are a partition's polled records from head on: offsets rise.
type pending struct {
	recs []polled
	head int // recs[:head] are covered by the position already
}

type polled struct {
	offset int64
	epoch  int32
	done   bool
}

// polled notes a record returned by Poll. Called with mu held.
func (t *tracker) polled(r *kgo.Record) {
	k := topicPartition{r.Topic, r.Partition}
	p := t.parts[k]
	if p == nil {
		p = &pending{}
		t.parts[k] = p
	}
	if n := len(p.recs); n > 0 && r.Offset <= p.recs[n-1].offset {
		// The partition was rewound (a reset after data loss): what
		// was polled before comes again.
		p.recs, p.head = p.recs[:0], 0
	}
	p.recs = append(p.recs, polled{offset: r.Offset, epoch: r.LeaderEpoch})
}

var errForeignRecord = errors.New("record was not returned by this consumer's Poll")

// commit marks recs done and returns the positions that moved.
func (t *tracker) commit(recs []*stream.Record) (map[string]map[int32]kgo.EpochOffset, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var moved map[topicPartition]*pending
	var one *pending // most commits touch one partition: no map then
	var oneKey topicPartition
	for _, sr := range recs {
		r, ok := sr.Handle.(*kgo.Record)
		if !ok {
			return nil, errForeignRecord
		}
		k := topicPartition{r.Topic, r.Partition}
		p := t.parts[k]
		if p == nil {
			continue // not ours any more
		}
		live := p.recs[p.head:]
		i := sort.Search(len(live), func(i int) bool { return live[i].offset >= r.Offset })
		if i == len(live) || live[i].offset != r.Offset {
			continue // covered already, or polled before a rebalance
		}
		live[i].done = true
		switch {
		case one == nil:
			one, oneKey = p, k
		case one != p:
			if moved == nil {
				moved = map[topicPartition]*pending{oneKey: one}
			}
			moved[k] = p
		}
	}
	if one == nil {
		return nil, nil
	}
	if moved == nil {
		moved = map[topicPartition]*pending{oneKey: one}
	}
	var marks map[string]map[int32]kgo.EpochOffset
	for k, p := range moved {
		last := -1
		for p.head < len(p.recs) && p.recs[p.head].done {
			last = p.head
			p.head++
		}
		if last < 0 {
			continue
		}
		pos := kgo.EpochOffset{Epoch: p.recs[last].epoch, Offset: p.recs[last].offset + 1}
		if p.head == len(p.recs) {
			p.recs, p.head = p.recs[:0], 0
		} else if p.head > len(p.recs)/2 {
			p.recs = p.recs[:copy(p.recs, p.recs[p.head:])]
			p.head = 0
		}
		if marks == nil {
			marks = map[string]map[int32]kgo.EpochOffset{}
		}
		if marks[k.topic] == nil {
			marks[k.topic] = map[int32]kgo.EpochOffset{}
		}
		marks[k.topic][k.partition] = pos
	}
	return marks, nil
}

// drop forgets partitions that left this member.
func (t *tracker) drop(parts map[string][]int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			delete(t.parts, topicPartition{topic, p})
		}
	}
}
