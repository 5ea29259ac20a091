package nats

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/stream"
)

// Headers the bus adds to carry what JetStream has no field for. Poll
// removes them again.
const (
	headerKey       = "sluice-key"       // Record.Key, when it is printable ASCII
	headerKeyBase64 = "sluice-key-b64"   // Record.Key otherwise, standard base64
	headerTimestamp = "sluice-timestamp" // Record.Timestamp, decimal Unix nanoseconds
)

// Produce publishes recs asynchronously and returns once JetStream has
// stored every one (a PubAck each), or with the first error. It waits at
// most Config.PublishTimeout (and no longer than ctx allows); running out of
// time, a lost connection or a stream without a leader give an error
// wrapping stream.ErrUnavailable. A record larger than the topic or server
// allows gives stream.ErrRecordTooLarge. After an error some records may
// have been stored.
//
// A record with Partition >= 0 goes to subject "<topic>.<partition>";
// otherwise the partition is a hash of Key, or round robin without a key.
func (b *Bus) Produce(ctx context.Context, recs ...*stream.Record) error {
	if b.closed.Load() {
		return fmt.Errorf("nats: produce: %w", stream.ErrClosed)
	}
	if len(recs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeoutCause(ctx, b.cfg.PublishTimeout, errPublishTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	stall := time.Until(deadline)
	if ctx.Err() != nil || stall <= 0 {
		return b.produceErr(ctx, context.Cause(ctx))
	}
	// No retries inside nats.go: a retry would read rec.Value after
	// Produce returned and the caller took the buffer back. The caller
	// retries ErrUnavailable instead.
	opts := []jetstream.PublishOpt{jetstream.WithRetryAttempts(0), jetstream.WithStallWait(stall)}

	acks := make([]jetstream.PubAckFuture, len(recs))
	var t *topicInfo
	for i, rec := range recs {
		if t == nil || rec.Topic != recs[i-1].Topic {
			var err error
			if t, err = b.topic(ctx, rec.Topic); err != nil {
				return b.produceErr(ctx, err)
			}
			if e := b.fault.Load().of(t.stream); e != "" {
				// The server would not answer: fail now, not at the
				// publish timeout.
				return fmt.Errorf("nats: produce to %s: %w: the embedded store cannot be written until JetStream restarts: %s", rec.Topic, stream.ErrUnavailable, e)
			}
		}
		msg, err := b.message(rec, t)
		if err != nil {
			return fmt.Errorf("nats: produce to %s: %w", rec.Topic, err)
		}
		if acks[i], err = b.js.PublishMsgAsync(msg, opts...); err != nil {
			return b.produceErr(ctx, err)
		}
	}
	for _, ack := range acks {
		select {
		case <-ack.Ok():
		case err := <-ack.Err():
			return b.produceErr(ctx, err)
		case <-ctx.Done():
			return b.produceErr(ctx, context.Cause(ctx))
		}
	}
	return nil
}

func (b *Bus) produceErr(ctx context.Context, err error) error {
	if b.closed.Load() {
		return fmt.Errorf("nats: produce: %w", stream.ErrClosed)
	}
	if ctx.Err() != nil && err != context.Cause(ctx) {
		err = fmt.Errorf("%w (%w)", context.Cause(ctx), err)
	}
	return wrapErr("produce", err)
}

// message builds the NATS message for rec. Its Data is rec.Value, not a
// copy: nats.go copies it into the connection's buffer before
// PublishMsgAsync returns.
func (b *Bus) message(rec *stream.Record, t *topicInfo) (*natsgo.Msg, error) {
	parts := int32(len(t.subjects))
	p := rec.Partition
	switch {
	case p >= parts:
		return nil, fmt.Errorf("partition %d out of range (%d partitions)", p, parts)
	case p >= 0:
	case len(rec.Key) > 0:
		p = int32(fnv1a(rec.Key) % uint32(parts))
	default:
		p = int32(b.rr.Add(1) % uint32(parts))
	}
	msg := &natsgo.Msg{Subject: t.subjects[p], Data: rec.Value}
	n := len(rec.Headers)
	if len(rec.Key) > 0 {
		n++
	}
	if !rec.Timestamp.IsZero() {
		n++
	}
	if n == 0 {
		return msg, nil
	}

	// All header values live in one string and their []string cells in
	// one slice: a record's headers cost four allocations, not two each.
	var keyB64 string
	size := 20 // a decimal int64
	for _, hd := range rec.Headers {
		if err := checkHeaderKey(hd.Key); err != nil {
			return nil, err
		}
		size += len(hd.Value)
	}
	if len(rec.Key) > 0 {
		if printable(rec.Key) {
			size += len(rec.Key)
		} else {
			keyB64 = base64.StdEncoding.EncodeToString(rec.Key)
		}
	}
	var sb strings.Builder
	sb.Grow(size)
	ends := make([]int, 0, n)
	for _, hd := range rec.Headers {
		sb.Write(hd.Value)
		ends = append(ends, sb.Len())
	}
	if len(rec.Key) > 0 && keyB64 == "" {
		sb.Write(rec.Key)
		ends = append(ends, sb.Len())
	}
	if !rec.Timestamp.IsZero() {
		var num [20]byte
		sb.Write(strconv.AppendInt(num[:0], rec.Timestamp.UnixNano(), 10))
		ends = append(ends, sb.Len())
	}
	all := sb.String()
	cells := make([]string, len(ends))
	for i, end := range ends {
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		cells[i] = all[start:end]
	}

	h := make(natsgo.Header, n)
	add := func(k string, i int) {
		if v, ok := h[k]; ok {
			h[k] = append(v, cells[i])
		} else {
			h[k] = cells[i : i+1 : i+1]
		}
	}
	i := 0
	for _, hd := range rec.Headers {
		add(hd.Key, i)
		i++
	}
	switch {
	case keyB64 != "":
		h[headerKeyBase64] = []string{keyB64}
	case len(rec.Key) > 0:
		add(headerKey, i)
		i++
	}
	if !rec.Timestamp.IsZero() {
		add(headerTimestamp, i)
	}
	msg.Header = h
	return msg, nil
}

// checkHeaderKey rejects the bus's own headers and JetStream's "Nats-"
// headers, which would change how the server stores the record (a
// "Nats-Rollup" header can purge a stream).
func checkHeaderKey(k string) error {
	switch {
	case k == headerKey || k == headerKeyBase64 || k == headerTimestamp:
		return fmt.Errorf("header %q is reserved for the bus", k)
	case len(k) >= 5 && strings.EqualFold(k[:5], "nats-"):
		return fmt.Errorf("header %q: the Nats- prefix is reserved for JetStream", k)
	}
	return nil
}

// printable reports whether b survives as a NATS header value unchanged:
// ASCII without control characters and without white space at either end.
func printable(b []byte) bool {
	if b[0] == ' ' || b[len(b)-1] == ' ' {
		return false
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// fnv1a is 32-bit FNV-1a, inline so that hashing a key allocates nothing.
func fnv1a(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}
