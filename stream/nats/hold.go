package nats

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/stream"
)

// held is a record polled and not yet committed.
type held struct {
	topic string
	since time.Time // when Poll returned it
}

// ackProgress is JetStream's "work in progress" ack: it restarts the
// record's AckWait without acknowledging it.
var ackProgress = []byte("+WPI")

// keepAlive sends an in-progress ack for every record in hand each
// interval, until the consumer closes. Records polled and then abandoned
// (the member closes or dies) stop receiving them and come again after
// AckWait. So do records held for MaxHold: a stage that neither commits
// them nor fails (it hangs) would otherwise keep them from the group
// forever. The last in-progress ack of a record goes out before MaxHold
// has passed, so it comes again by MaxHold + AckWait after the poll.
func (c *consumer) keepAlive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var replies []string
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		var expired map[string]int64 // records by topic
		now := time.Now()
		c.handMu.Lock()
		replies = replies[:0]
		for r, h := range c.inHand {
			if now.Sub(h.since) >= c.bus.cfg.MaxHold {
				delete(c.inHand, r)
				if expired == nil {
					expired = map[string]int64{}
				}
				expired[h.topic]++
				continue
			}
			replies = append(replies, r)
		}
		c.handMu.Unlock()
		for _, r := range replies {
			// Fire and forget: a lost one costs at worst the
			// redelivery this would have avoided.
			if err := c.bus.nc.Publish(r, ackProgress); err != nil {
				break
			}
		}
		c.holdExpired(expired)
	}
}

// holdExpired reports records held for MaxHold, by topic.
func (c *consumer) holdExpired(expired map[string]int64) {
	for topic, n := range expired {
		c.bus.log.Warn("nats: records held uncommitted for longer than max_hold (a stage that hangs?); "+
			"JetStream delivers them again after ack_wait, to any member of the group",
			"group", c.group, "topic", topic, "records", n, "max_hold", c.bus.cfg.MaxHold, "ack_wait", c.bus.cfg.AckWait)
		if c.onHoldExpired != nil {
			c.onHoldExpired(topic, n)
		}
	}
}

func (c *consumer) hold(recs []*stream.Record) {
	now := time.Now()
	c.handMu.Lock()
	defer c.handMu.Unlock()
	for _, r := range recs {
		if m, ok := r.Handle.(jetstream.Msg); ok && m.Reply() != "" {
			c.inHand[m.Reply()] = held{topic: r.Topic, since: now}
		}
	}
}

func (c *consumer) release(recs []*stream.Record) {
	c.handMu.Lock()
	defer c.handMu.Unlock()
	for _, r := range recs {
		if reply := replyOf(r); reply != "" {
			delete(c.inHand, reply)
		}
	}
}
