package ingest

import (
	"context"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
)

// Group commit.
//
// Requests bound for the same partition of the same raw topic, with the same
// tenant, share records: an OTLP Export*ServiceRequest is a sequence of
// repeated resource_* fields, so the concatenation of two requests of a
// signal is one valid request holding both. Each (signal, tenant, partition)
// is a lane with at most one Produce call of its records under way:
//
//   - a request whose lane is idle produces its own chunks at once, from its
//     own goroutine, exactly as without coalescing: an idle ingester adds no
//     latency;
//   - a request whose lane is busy appends its chunks to the lane's queue and
//     waits; when the call under way returns, everything queued goes to the
//     bus in the next call, packed into as few records as fit below
//     MaxRecordBytes (a flusher goroutine runs the lane while it stays busy);
//   - each request is answered once every record holding one of its chunks
//     is acknowledged, with the error of the first that failed. A bus that
//     reports each record's outcome (perRecordProducer: the Kafka bus) fails
//     exactly the requests of a failed record; on the others a failed call
//     fails the requests of all its records.
//
// Under load the lane's records grow with the requests that arrive during
// one round trip to the bus, so small requests cost the bus (records,
// headers, compression, the worker's per-record work) what large ones do.
// Order within a lane is kept: chunks go to the bus in the order they were
// queued, and a lane's calls follow each other.
//
// A request whose client goes away withdraws its chunks that are still
// queued; chunks already in a record stay there (the record is built from
// copies, so nothing the client's buffers hold is read after it returns).

// perRecordProducer is a bus that tells the outcome of each record of a
// call (stream/kafka.Bus.ProduceEach): errs[k] is recs[k]'s error. It
// returns the first error, as Produce does.
type perRecordProducer interface {
	ProduceEach(ctx context.Context, errs []error, recs ...*stream.Record) error
}

// laneKey names a lane. Partition is -1 when the bus chooses (KeyNone).
type laneKey struct {
	sig       otlpwire.Signal
	partition int32
	tenant    string
}

// lane is the state of one (signal, tenant, partition); guarded by
// Ingester.mu.
type lane struct {
	key     laneKey
	tenantV []byte // header value
	busy    bool   // a Produce call of the lane's records is under way
	queue   []part // chunks waiting for the next call, in arrival order
	spare   []part // the previous queue, for reuse
}

// part is one chunk of a request in a lane's queue.
type part struct {
	value []byte
	items int
	req   *exportState
}

// maxFreeLanes bounds the idle lanes kept for reuse.
const maxFreeLanes = 256

// laneLocked returns key's lane, creating it; i.mu is held.
func (i *Ingester) laneLocked(key laneKey) *lane {
	if l := i.lanes[key]; l != nil {
		return l
	}
	var l *lane
	if n := len(i.freeLanes); n > 0 {
		l, i.freeLanes = i.freeLanes[n-1], i.freeLanes[:n-1]
	} else {
		l = new(lane)
	}
	l.key = key
	l.tenantV = append(l.tenantV[:0], key.tenant...)
	i.lanes[key] = l
	return l
}

// nextLocked is called when the Produce call of l returns: it hands back
// what was queued meanwhile (the lane stays busy), or idles the lane and
// returns nil. done is the batch just produced, whose slice is reused.
func (i *Ingester) nextLocked(l *lane, done []part) []part {
	if done != nil {
		clear(done)
		l.spare = done[:0]
	}
	if len(l.queue) > 0 {
		batch := l.queue
		l.queue, l.spare = l.spare, nil
		return batch
	}
	l.busy = false
	delete(i.lanes, l.key)
	l.key.tenant = ""
	if len(i.freeLanes) < maxFreeLanes && cap(l.spare) <= maxPooledParts {
		i.freeLanes = append(i.freeLanes, l)
	}
	return nil
}

// maxPooledParts bounds the queue slices kept by idle lanes.
const maxPooledParts = 4096

// enqueue assigns the request's chunks to lanes: the chunks of an idle lane
// (run) are the request's to produce at once, the others are queued. It
// puts the chunks to produce now in st.own and returns the number queued
// (also in st.left, which the flushers count down).
func (i *Ingester) enqueue(st *exportState, sig otlpwire.Signal, tenant string, chunks []otlpwire.Chunk) (queued int) {
	st.own = st.own[:0]
	st.runs = st.runs[:0]
	st.queued = st.queued[:0]
	st.left, st.err = 0, nil
	i.mu.Lock()
	for j := 0; j < len(chunks); {
		k := j + 1
		for k < len(chunks) && chunks[k].Partition == chunks[j].Partition {
			k++
		}
		l := i.laneLocked(laneKey{sig: sig, partition: chunks[j].Partition, tenant: tenant})
		if !l.busy {
			l.busy = true
			st.runs = append(st.runs, l)
			st.own = append(st.own, chunks[j:k]...)
		} else {
			for _, c := range chunks[j:k] {
				l.queue = append(l.queue, part{value: c.Value, items: c.Items, req: st})
			}
			st.left += k - j
			st.queued = append(st.queued, l)
		}
		j = k
	}
	queued = st.left
	i.mu.Unlock()
	return queued
}

// releaseRuns ends the calls of the lanes the request produced itself:
// what was queued meanwhile goes on in a flusher.
func (i *Ingester) releaseRuns(st *exportState) {
	i.mu.Lock()
	for _, l := range st.runs {
		if batch := i.nextLocked(l, nil); batch != nil {
			go i.flush(l, batch)
		}
	}
	i.mu.Unlock()
	clear(st.runs)
}

// wait waits for the request's queued chunks (queued of them, as enqueue
// counted) and returns the first error of their records. On ctx's end it
// withdraws those still queued (see withdraw) and returns ctx's error; st
// must then not be reused.
func (i *Ingester) wait(ctx context.Context, st *exportState, queued int) error {
	if queued == 0 {
		return nil
	}
	select {
	case <-st.done:
		return st.err
	case <-ctx.Done():
	}
	if withdrawn, abandoned := i.withdraw(st); abandoned || withdrawn > 0 {
		return ctx.Err()
	}
	return st.err // every chunk was settled in the meantime
}

// withdraw takes the request's chunks that are still queued out of their
// lanes. It returns true (abandoned) when some are in a record under way,
// which may still read the request's buffers and will still settle st: the
// caller must then leave both alone. Otherwise nothing refers to st any
// more, and st.err holds the outcome of the chunks already written.
func (i *Ingester) withdraw(st *exportState) (withdrawn int, abandoned bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if st.left == 0 {
		if len(st.queued) > 0 {
			<-st.done // settled before the lock: take the signal
		}
		return 0, false
	}
	for _, l := range st.queued {
		kept := l.queue[:0]
		for _, p := range l.queue {
			if p.req == st {
				st.left--
				withdrawn++
				continue
			}
			kept = append(kept, p)
		}
		clear(l.queue[len(kept):])
		l.queue = kept
	}
	return withdrawn, st.left > 0
}

// flush runs lane l while it is busy: it produces batch, then whatever was
// queued meanwhile, until nothing is.
func (i *Ingester) flush(l *lane, batch []part) {
	fb, _ := i.flushBufs.Get().(*flushBuf)
	if fb == nil {
		fb = new(flushBuf)
	}
	for batch != nil {
		i.produceParts(l, batch, fb)
		i.mu.Lock()
		batch = i.nextLocked(l, batch)
		i.mu.Unlock()
	}
	if fb.clean && cap(fb.vals) <= poolLimit {
		i.flushBufs.Put(fb)
	}
}

// flushBuf is a flusher's scratch, reused while its calls succeed (and
// pooled by the Ingester between flushers).
type flushBuf struct {
	recs  []stream.Record
	ptrs  []*stream.Record
	hdrs  []stream.Header
	ends  []int // end (exclusive) in batch of each record's parts
	errs  []error
	hbuf  []byte
	vals  []byte // the values of the records of several parts
	clean bool   // the bus holds nothing of the buffers
}

// produceParts packs batch into records and produces them, then settles
// every part with its record's outcome.
func (i *Ingester) produceParts(l *lane, batch []part, fb *flushBuf) {
	limit := i.cfg.MaxRecordBytes - headerRoom
	fb.ends = fb.ends[:0]
	size, joined := 0, 0 // joined: the bytes of the records of several parts
	for k, p := range batch {
		if k > 0 && size+len(p.value) > limit {
			fb.ends = append(fb.ends, k)
			size = 0
		}
		size += len(p.value)
	}
	fb.ends = append(fb.ends, len(batch))
	start := 0
	for _, end := range fb.ends {
		if end-start > 1 {
			for _, p := range batch[start:end] {
				joined += len(p.value)
			}
		}
		start = end
	}
	n := len(fb.ends)
	if !fb.clean || cap(fb.recs) < n {
		// After a failure the bus may still read the old buffers.
		fb.recs = make([]stream.Record, n)
		fb.ptrs = make([]*stream.Record, n)
		fb.hdrs = make([]stream.Header, n*headersPerRecord)
		fb.errs = make([]error, n)
		fb.hbuf = nil
	}
	if !fb.clean || cap(fb.vals) < joined {
		fb.vals = make([]byte, 0, joined)
	}
	vals := fb.vals[:0]
	recs, ptrs, hdrs, errs := fb.recs[:n], fb.ptrs[:n], fb.hdrs[:n*headersPerRecord], fb.errs[:n]
	clear(errs)
	need := n * 64
	if cap(fb.hbuf) < need {
		fb.hbuf = make([]byte, 0, need)
	}
	b := fb.hbuf[:0]
	topic, sig := i.topics[l.key.sig], l.key.sig
	start = 0
	for r, end := range fb.ends {
		parts := batch[start:end]
		var value []byte
		items := 0
		if len(parts) == 1 {
			value, items = parts[0].value, parts[0].items
		} else {
			// A copy in the flusher's own buffer, which holds no
			// request's memory (a request may go while its record is
			// under way) and is reused only once the bus has
			// acknowledged every record of the call.
			v0 := len(vals)
			for _, p := range parts {
				vals = append(vals, p.value...)
				items += p.items
			}
			value = vals[v0:len(vals):len(vals)]
		}
		recv := parts[0].req.recv
		h := hdrs[r*headersPerRecord : (r+1)*headersPerRecord : (r+1)*headersPerRecord]
		s0 := len(b)
		b = recv.AppendFormat(b, time.RFC3339Nano)
		s1 := len(b)
		b = strconv.AppendInt(b, int64(items), 10)
		h[0] = stream.Header{Key: stream.HeaderContentType, Value: contentTypeValue}
		h[1] = stream.Header{Key: stream.HeaderTenant, Value: l.tenantV}
		h[2] = stream.Header{Key: stream.HeaderReceivedAt, Value: b[s0:s1:s1]}
		h[3] = stream.Header{Key: stream.HeaderItems, Value: b[s1:len(b):len(b)]}
		h[4] = stream.Header{Key: stream.HeaderSignal, Value: signalValues[sig]}
		recs[r] = stream.Record{Topic: topic, Partition: l.key.partition, Value: value, Headers: h, Timestamp: recv}
		ptrs[r] = &recs[r]
		start = end
	}
	fb.hbuf = b
	ctx, cancel := context.WithTimeout(context.Background(), i.cfg.ProduceTimeout)
	var err error
	if ep, ok := i.bus.(perRecordProducer); ok {
		err = ep.ProduceEach(ctx, errs, ptrs...)
	} else if err = i.bus.Produce(ctx, ptrs...); err != nil {
		for k := range errs {
			errs[k] = err
		}
	}
	cancel()
	fb.clean = err == nil
	written := 0
	for _, e := range errs {
		if e == nil {
			written++
		}
	}
	i.m.records[sig].Add(float64(written))
	i.mu.Lock()
	start = 0
	for r, end := range fb.ends {
		rerr := errs[r]
		for _, p := range batch[start:end] {
			st := p.req
			if rerr != nil && st.err == nil {
				st.err = rerr
			}
			if st.left--; st.left == 0 {
				st.done <- struct{}{}
			}
		}
		start = end
	}
	i.mu.Unlock()
	if fb.clean {
		clear(recs)
	}
}
