package status

import (
	"strconv"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// DefaultDeadLetters is how many dead letters a DeadLetters keeps.
const DefaultDeadLetters = 50

// DeadLetter is what the status page shows of one dead letter: its
// headers, never its value. The reason is the sluice-error header, which
// stream.ErrorHeader bounds.
type DeadLetter struct {
	Time   time.Time `json:"time"`
	Stage  string    `json:"stage"`  // worker, aggregator, sink/<name>
	Origin string    `json:"origin"` // topic/partition/offset of the record
	Tenant string    `json:"tenant"`
	Reason string    `json:"reason"`
	// Bytes is the size of the record's value: the original size when
	// the dead letter was cut to fit the dead-letter topic (Truncated).
	Bytes     int  `json:"bytes"`
	Truncated bool `json:"truncated,omitempty"`
}

// DeadLetters keeps the last dead letters the process's stages wrote, in a
// ring of fixed size, and counts them all. Its Hook is the stages'
// stream.DeadLetterHook; it is safe for concurrent use.
type DeadLetters struct {
	mu   sync.Mutex
	ring []DeadLetter
	next int    // where the next one goes
	seen uint64 // every dead letter told, kept or not
	now  func() time.Time
}

// NewDeadLetters keeps the last n dead letters (DefaultDeadLetters when n
// <= 0).
func NewDeadLetters(n int) *DeadLetters {
	if n <= 0 {
		n = DefaultDeadLetters
	}
	return &DeadLetters{ring: make([]DeadLetter, 0, n), now: time.Now}
}

// Hook records dead letters; it copies what it keeps of them.
func (d *DeadLetters) Hook(stage string, dead []*stream.Record) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range dead {
		dl := DeadLetter{Time: now, Stage: stage, Origin: string(r.Header(stream.HeaderOrigin)),
			Tenant: string(r.Header(stream.HeaderTenant)), Reason: string(r.Header(stream.HeaderError)), Bytes: len(r.Value)}
		if t := r.Header(stream.HeaderTruncated); t != nil {
			if n, err := strconv.Atoi(string(t)); err == nil {
				dl.Bytes, dl.Truncated = n, true
			}
		}
		d.seen++
		if len(d.ring) < cap(d.ring) {
			d.ring = append(d.ring, dl)
		} else {
			d.ring[d.next] = dl
		}
		d.next = (d.next + 1) % cap(d.ring)
	}
}

// Last returns the dead letters kept, newest first, and how many were
// told in all.
func (d *DeadLetters) Last() ([]DeadLetter, uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]DeadLetter, 0, len(d.ring))
	for i := range len(d.ring) {
		out = append(out, d.ring[(d.next-1-i+2*cap(d.ring))%cap(d.ring)])
	}
	return out, d.seen
}
