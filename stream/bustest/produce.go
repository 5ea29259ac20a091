package bustest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// ensureTopics: EnsureTopics creates topics with their partitions, is
// idempotent, leaves an existing topic as it is, and (Durable) a reopened
// bus learns the existing partition count.
func ensureTopics(e *env) {
	t := e.t
	a, b := e.name("t"), e.name("t")
	specs := []stream.TopicSpec{{Name: a, Partitions: 3}, {Name: b, Partitions: 1}}
	Ensure(t, e.bus, specs...)
	Ensure(t, e.bus, specs...)
	Ensure(t, e.bus, stream.TopicSpec{Name: a, Partitions: 5})
	for name, want := range map[string]int32{a: 3, b: 1} {
		if got := e.bus.Partitions(name); got != want {
			t.Errorf("Partitions(%s) = %d, want %d", name, got, want)
		}
	}
	// Each partition takes records; one beyond them is refused for good.
	e.produce(Values(a, "r", 3, 3)...)
	err := e.bus.Produce(context.Background(), &stream.Record{Topic: a, Partition: 3, Value: []byte("x")})
	if err == nil || stream.IsRetryable(err) {
		t.Errorf("produce to partition 3 of 3: %v, want a permanent error", err)
	}

	if !e.caps.Durable {
		return
	}
	e.reopen()
	Ensure(t, e.bus, stream.TopicSpec{Name: a, Partitions: 8})
	if got := e.bus.Partitions(a); got != 3 {
		t.Errorf("after a restart: Partitions = %d, want the existing 3", got)
	}
	c := e.consume(e.group(), a)
	if got := ValueSet(e.drain(c, 3)); !maps.Equal(got, ValueSet(Values(a, "r", 3, 3))) {
		t.Errorf("after a restart the topic holds %v", got)
	}
}

// roundTrip: records come back as they were produced — topic, key, value,
// explicit partition, producer timestamp — and Produce leaves the
// caller's buffers alone once it returned.
func roundTrip(e *env) {
	t := e.t
	topic := e.topic(3)
	ts := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	big := make([]byte, 64<<10)
	rand.Read(big)
	in := []*stream.Record{
		{Topic: topic, Partition: 2, Key: []byte("tenant-a"), Value: []byte("explicit"), Timestamp: ts},
		{Topic: topic, Partition: -1, Key: []byte("k1"), Value: []byte("keyed-a")},
		{Topic: topic, Partition: -1, Key: []byte("k1"), Value: []byte("keyed-b")},
		{Topic: topic, Partition: -1, Key: []byte{0, 1, 0xff, '\n'}, Value: big},
		{Topic: topic, Partition: -1, Key: []byte(" padded key "), Value: []byte("spaces in the key")},
		{Topic: topic, Partition: 0, Value: nil},
		{Topic: topic, Partition: -1, Value: []byte("unkeyed")},
	}
	want := make([]stream.Record, len(in))
	for i, r := range in {
		want[i] = *r
		want[i].Key, want[i].Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
	}
	e.produce(in...)
	for _, r := range in { // the caller's again
		for i := range r.Key {
			r.Key[i] = 'X'
		}
		for i := range r.Value {
			r.Value[i] = 'X'
		}
	}

	c := e.consume(e.group(), topic)
	got := map[string]*stream.Record{}
	for _, r := range e.drain(c, len(in)) {
		got[string(r.Value)] = r
	}
	for _, w := range want {
		r := got[string(w.Value)]
		if r == nil {
			t.Errorf("record %.20q did not come back", w.Value)
			continue
		}
		if r.Topic != topic || !bytes.Equal(r.Key, w.Key) {
			t.Errorf("record %.20q: topic %q key %q, want %q %q", w.Value, r.Topic, r.Key, topic, w.Key)
		}
		if w.Partition >= 0 && r.Partition != w.Partition {
			t.Errorf("record %.20q: partition %d, want %d", w.Value, r.Partition, w.Partition)
		}
		if r.Partition < 0 || r.Partition >= 3 {
			t.Errorf("record %.20q: partition %d of 3", w.Value, r.Partition)
		}
		if len(r.Headers) != 0 {
			t.Errorf("record %.20q: headers %q, want none", w.Value, r.Headers)
		}
	}
	if r := got["explicit"]; r != nil && !r.Timestamp.Equal(ts.Truncate(e.caps.TimestampResolution)) {
		t.Errorf("timestamp %v, want %v", r.Timestamp, ts)
	}
	if a, b := got["keyed-a"], got["keyed-b"]; a != nil && b != nil && (a.Partition != b.Partition || a.Offset >= b.Offset) {
		t.Errorf("one key: partition/offset %d/%d then %d/%d, want one partition, in order", a.Partition, a.Offset, b.Partition, b.Offset)
	}
	e.quiet(c)
}

// headers: several headers, repeated keys, empty values, mixed case, and
// (unless TextHeaders) binary values come back as produced, in order
// (SortedHeaders: sorted by key, stably).
func headers(e *env) {
	t := e.t
	topic := e.topic(1)
	h := func(k, v string) stream.Header { return stream.Header{Key: k, Value: []byte(v)} }
	cases := map[string][]stream.Header{
		"sluice":   {h(stream.HeaderContentType, stream.ContentTypeOTLPProto), h(stream.HeaderTenant, "team-a"), h(stream.HeaderItems, "42")},
		"repeated": {h("x-multi", "1"), h("a-other", "x"), h("x-multi", "2"), h("x-multi", "3")},
		"empty":    {{Key: "empty-nil"}, {Key: "empty", Value: []byte{}}, h("after-empty", "v")},
		"case":     {h("X-Mixed-Case", "Value With Inner  Spaces"), h("lower", "v")},
		"none":     nil,
	}
	var many []stream.Header
	for i := range 40 {
		many = append(many, h(fmt.Sprintf("h%02d", 39-i), strings.Repeat("v", i*10)))
	}
	cases["many"] = many
	if !e.caps.TextHeaders {
		cases["binary"] = []stream.Header{{Key: "bin", Value: []byte{0, 1, 0xff, '\r', '\n', ' ', 0x7f}}, h("padded", "  both ends  ")}
	}
	var in []*stream.Record
	for _, name := range slices.Sorted(maps.Keys(cases)) {
		in = append(in, &stream.Record{Topic: topic, Partition: -1, Value: []byte(name), Headers: cases[name]})
	}
	e.produce(in...)

	c := e.consume(e.group(), topic)
	for _, r := range e.drain(c, len(in)) {
		want := slices.Clone(cases[string(r.Value)])
		if e.caps.SortedHeaders {
			slices.SortStableFunc(want, func(a, b stream.Header) int { return strings.Compare(a.Key, b.Key) })
		}
		if !slices.EqualFunc(r.Headers, want, func(a, b stream.Header) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
			t.Errorf("record %q: headers\n%q\nwant\n%q", r.Value, r.Headers, want)
		}
	}
}

// timestamps: a record without a timestamp gets the time it was produced
// (or stored); one with a timestamp keeps it, to the bus's resolution.
func timestamps(e *env) {
	t := e.t
	topic := e.topic(1)
	res := e.caps.TimestampResolution
	// Within the retention and the clock skew a broker accepts (Kafka 4
	// refuses timestamps more than an hour ahead by default).
	past := time.Now().Add(-49 * time.Hour).Round(0)
	future := time.Now().Add(10 * time.Minute).Round(0)
	before := time.Now()
	e.produce(
		&stream.Record{Topic: topic, Partition: -1, Value: []byte("stamped")},
		&stream.Record{Topic: topic, Partition: -1, Value: []byte("past"), Timestamp: past},
		&stream.Record{Topic: topic, Partition: -1, Value: []byte("future"), Timestamp: future},
	)
	after := time.Now()
	c := e.consume(e.group(), topic)
	for _, r := range e.drain(c, 3) {
		switch string(r.Value) {
		case "stamped":
			if r.Timestamp.Before(before.Truncate(res).Add(-res)) || r.Timestamp.After(after.Add(res)) {
				t.Errorf("stamped by the bus: %v, want between %v and %v", r.Timestamp, before, after)
			}
		case "past":
			if !r.Timestamp.Equal(past.Truncate(res)) {
				t.Errorf("past: %v, want %v", r.Timestamp, past.Truncate(res))
			}
		case "future":
			if !r.Timestamp.Equal(future.Truncate(res)) {
				t.Errorf("future: %v, want %v", r.Timestamp, future.Truncate(res))
			}
		}
	}
}

// orderWithinPartition: a member alone receives each partition's records
// in the order they were produced, in one Produce or several, with
// offsets that rise.
func orderWithinPartition(e *env) {
	t := e.t
	topic := e.topic(2)
	var want []string // partition 0
	var keyed []string
	for batch := range 3 {
		recs := Values(topic, fmt.Sprintf("b%d-", batch), 10, 0)
		for _, r := range recs {
			r.Partition = 0
			want = append(want, string(r.Value))
		}
		e.produce(recs...)
		one := &stream.Record{Topic: topic, Partition: 0, Value: fmt.Appendf(nil, "single%d", batch)}
		e.produce(one)
		want = append(want, string(one.Value))
	}
	recs := Values(topic, "keyed", 20, 0)
	for _, r := range recs {
		r.Key = []byte("one key")
		keyed = append(keyed, string(r.Value))
	}
	e.produce(recs...)

	c := Consume(t, e.bus, stream.ConsumerConfig{Group: e.group(), Topics: []string{topic}, MaxPollRecords: 7})
	got := e.drain(c, len(want)+len(keyed))
	parts := byPartition(got)
	for p, recs := range parts {
		for i := 1; i < len(recs); i++ {
			if recs[i].Offset <= recs[i-1].Offset {
				t.Errorf("partition %d: offset %d after %d", p, recs[i].Offset, recs[i-1].Offset)
			}
		}
	}
	var p0, pk []string
	for _, r := range parts[0] {
		if v := string(r.Value); strings.HasPrefix(v, "keyed") {
			pk = append(pk, v)
		} else {
			p0 = append(p0, v)
		}
	}
	for p, recs := range parts {
		if p != 0 {
			for _, r := range recs {
				pk = append(pk, string(r.Value))
			}
		}
	}
	if !slices.Equal(p0, want) {
		t.Errorf("partition 0 came in the order\n%v\nwant\n%v", p0, want)
	}
	if !slices.Equal(pk, keyed) {
		t.Errorf("the records of one key came in the order\n%v\nwant\n%v", pk, keyed)
	}
}

// recordTooLarge: a record above the topic's MaxRecordBytes, by its value
// or by its headers, fails with stream.ErrRecordTooLarge, which is not
// retryable; nothing of it is stored and the bus goes on working.
func recordTooLarge(e *env) {
	t := e.t
	const limit = 4096
	topic := e.name("t")
	Ensure(t, e.bus, stream.TopicSpec{Name: topic, Partitions: 1, MaxRecordBytes: limit})
	random := make([]byte, 3*limit) // incompressible: a bus that compresses still has to refuse it
	rand.Read(random)
	text := base64.StdEncoding.EncodeToString(random) // the same, as a header value
	for name, r := range map[string]*stream.Record{
		"value":  {Topic: topic, Partition: -1, Value: random},
		"header": {Topic: topic, Partition: -1, Value: []byte("small"), Headers: []stream.Header{{Key: "big", Value: []byte(text)}}},
	} {
		err := e.bus.Produce(context.Background(), r)
		if !errors.Is(err, stream.ErrRecordTooLarge) || stream.IsRetryable(err) {
			t.Errorf("%s above the limit: %v, want ErrRecordTooLarge, not retryable", name, err)
		}
	}
	fits := &stream.Record{Topic: topic, Partition: -1, Value: random[:limit/4], Headers: []stream.Header{{Key: "h", Value: []byte(text[:limit/4])}}}
	e.produce(fits)
	c := e.consume(e.group(), topic)
	got := e.drain(c, 1)
	if !bytes.Equal(got[0].Value, fits.Value) {
		t.Errorf("got a record of %d bytes, want the one that fits", len(got[0].Value))
	}
	if others := e.untilMarkers(c, topic, 1); len(others) > 0 {
		t.Errorf("%d refused records were stored", len(others))
	}
}

// concurrentProduce: Produce may be called from several goroutines; every
// record arrives once.
func concurrentProduce(e *env) {
	t := e.t
	topic := e.topic(2)
	const producers, batches, size = 4, 5, 10
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range batches {
				if err := e.bus.Produce(context.Background(), Values(topic, "p"+strconv.Itoa(p)+"-"+strconv.Itoa(i)+"-", size, 0)...); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	c := e.consume(e.group(), topic)
	got := ValueSet(e.drain(c, producers*batches*size))
	if len(got) != producers*batches*size {
		t.Errorf("got %d distinct records, want %d", len(got), producers*batches*size)
	}
}
