package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
)

// holdBus hands every Produce call to the test (calls) and carries it out
// once the test answers it: each record k for which fail returns an error
// fails, the others are written. Without each, a call with a failed record
// fails as a whole and writes nothing (as a bus that reports one error per
// call); with each it also implements ProduceEach.
type holdBus struct {
	Bus
	calls chan *heldCall
}

type heldCall struct {
	recs   []*stream.Record
	answer chan func(k int) error
}

// let carries the call out, failing the records for which fail (nil: none)
// returns an error.
func (c *heldCall) let(fail func(k int) error) {
	if fail == nil {
		fail = func(int) error { return nil }
	}
	c.answer <- fail
}

func (h *holdBus) hold(ctx context.Context, recs []*stream.Record) (func(int) error, error) {
	c := &heldCall{recs: recs, answer: make(chan func(int) error, 1)}
	h.calls <- c
	select {
	case f := <-c.answer:
		return f, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (h *holdBus) Produce(ctx context.Context, recs ...*stream.Record) error {
	fail, err := h.hold(ctx, recs)
	if err != nil {
		return err
	}
	for k := range recs {
		if err := fail(k); err != nil {
			return err
		}
	}
	return h.Bus.Produce(ctx, recs...)
}

type holdEachBus struct{ *holdBus }

func (h holdEachBus) ProduceEach(ctx context.Context, errs []error, recs ...*stream.Record) error {
	fail, err := h.hold(ctx, recs)
	if err != nil {
		return err
	}
	var first error
	for k, r := range recs {
		if errs[k] = fail(k); errs[k] == nil {
			errs[k] = h.Bus.Produce(ctx, r)
		}
		if first == nil {
			first = errs[k]
		}
	}
	return first
}

// pointRequest is a request of one data point that says who sent it: the
// client in its resource (service.name "c<client>", so that a client's
// requests share a partition), seq in the point's value.
func pointRequest(t testing.TB, client, seq int) []byte {
	return mustMarshal(t, &colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			strAttr("service.name", fmt.Sprintf("c%d", client))}},
		ScopeMetrics: []*metricspb.ScopeMetrics{{Scope: scope, Metrics: []*metricspb.Metric{{Name: "m", Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{
			DataPoints: []*metricspb.NumberDataPoint{{TimeUnixNano: 1, Value: &metricspb.NumberDataPoint_AsInt{AsInt: int64(seq)}}}}}}}}},
	}}})
}

// senders decodes a record value and lists the "client/seq" of each
// resource, in order.
func senders(t testing.TB, value []byte) []string {
	t.Helper()
	var req colmetricspb.ExportMetricsServiceRequest
	if err := proto.Unmarshal(value, &req); err != nil {
		t.Fatalf("record value: %v", err)
	}
	var out []string
	for _, rm := range req.ResourceMetrics {
		seq := rm.ScopeMetrics[0].Metrics[0].GetGauge().DataPoints[0].GetAsInt()
		out = append(out, fmt.Sprintf("%s/%d", rm.Resource.Attributes[0].Value.GetStringValue(), seq))
	}
	return out
}

type exportResult struct {
	id  int
	err error
}

// queuedParts is the number of chunks waiting in the ingester's lanes.
func queuedParts(ing *Ingester) int {
	ing.mu.Lock()
	defer ing.mu.Unlock()
	n := 0
	for _, l := range ing.lanes {
		n += len(l.queue)
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// startQueued starts request 0, which the bus holds, then requests 1..n one
// after the other, each once the previous is queued behind it, so that
// their order in the lane is known. It returns the held call of request 0.
func startQueued(t *testing.T, ing *Ingester, hb *holdBus, n int, ctxOf func(id int) context.Context, results chan<- exportResult) *heldCall {
	t.Helper()
	export := func(id int) {
		_, err := ing.Export(ctxOf(id), otlpwire.Metrics, "", pointRequest(t, 0, id))
		results <- exportResult{id, err}
	}
	go export(0)
	first := <-hb.calls
	for id := 1; id <= n; id++ {
		go export(id)
		waitFor(t, fmt.Sprintf("request %d to queue", id), func() bool { return queuedParts(ing) == id })
	}
	return first
}

func noAnswer(t *testing.T, results <-chan exportResult, what string) {
	t.Helper()
	select {
	case r := <-results:
		t.Fatalf("request %d answered (%v) %s", r.id, r.err, what)
	case <-time.After(20 * time.Millisecond):
	}
}

// TestGroupCommit: requests arriving while a record of their partition is
// being produced wait, go together in the next record in their order, and
// are answered only once that record is acknowledged.
func TestGroupCommit(t *testing.T) {
	mem := newBus(t, 1)
	hb := &holdBus{Bus: mem, calls: make(chan *heldCall, 4)}
	ing := newIngester(t, Config{}, hb)
	results := make(chan exportResult, 32)
	first := startQueued(t, ing, hb, 20, func(int) context.Context { return context.Background() }, results)
	if len(first.recs) != 1 {
		t.Fatalf("request 0 came in %d records", len(first.recs))
	}
	noAnswer(t, results, "before its record was acknowledged")

	first.let(nil)
	if r := <-results; r.id != 0 || r.err != nil {
		t.Fatalf("first answer: request %d, %v; want request 0, nil", r.id, r.err)
	}
	next := <-hb.calls
	noAnswer(t, results, "before the record holding it was acknowledged")
	if len(next.recs) != 1 {
		t.Fatalf("the 20 queued requests came in %d records, want 1", len(next.recs))
	}
	want := make([]string, 20)
	for k := range want {
		want[k] = fmt.Sprintf("c0/%d", k+1)
	}
	if got := senders(t, next.recs[0].Value); !slices.Equal(got, want) {
		t.Fatalf("coalesced record holds %v, want %v", got, want)
	}
	next.let(nil)
	for range 20 {
		if r := <-results; r.err != nil {
			t.Errorf("request %d: %v", r.id, r.err)
		}
	}
	recs := mem.Records(testTopics.Raw(otlpwire.Metrics))
	if len(recs) != 2 {
		t.Fatalf("%d records on the bus, want 2", len(recs))
	}
	if n := busItems(t, mem, otlpwire.Metrics, DefaultTenant); n != 21 {
		t.Fatalf("%d items on the bus, want 21", n)
	}
	if got := string(recs[1].Header(stream.HeaderItems)); got != "20" {
		t.Fatalf("coalesced record's %s = %q, want 20", stream.HeaderItems, got)
	}
	if queuedParts(ing) != 0 || len(ing.lanes) != 0 {
		t.Fatalf("lanes left busy: %d parts, %d lanes", queuedParts(ing), len(ing.lanes))
	}
}

// TestGroupCommitFailure: a failed record fails exactly the requests in it,
// with the retryable error of a failed bus.
func TestGroupCommitFailure(t *testing.T) {
	busDown := fmt.Errorf("test: %w", stream.ErrUnavailable)
	for _, each := range []bool{true, false} {
		t.Run(fmt.Sprintf("per-record=%v", each), func(t *testing.T) {
			mem := newBus(t, 1)
			hb := &holdBus{Bus: mem, calls: make(chan *heldCall, 4)}
			var bus Bus = hb
			if each {
				bus = holdEachBus{hb}
			}
			// Records of 2048 bytes: the 40 queued requests need
			// several.
			ing := newIngester(t, Config{MaxRecordBytes: 2048}, bus)
			results := make(chan exportResult, 64)
			first := startQueued(t, ing, hb, 40, func(int) context.Context { return context.Background() }, results)
			first.let(nil)
			if r := <-results; r.err != nil {
				t.Fatal(r.err)
			}
			next := <-hb.calls
			if len(next.recs) < 3 {
				t.Fatalf("40 queued requests in %d records, want at least 3 of 2048 bytes", len(next.recs))
			}
			failed := map[string]bool{}
			for _, s := range senders(t, next.recs[1].Value) {
				failed[s] = true
			}
			next.let(func(k int) error {
				if k == 1 {
					return busDown
				}
				return nil
			})
			for range 40 {
				r := <-results
				inFailed := failed[fmt.Sprintf("c0/%d", r.id)]
				switch {
				case !each && (r.err == nil || !IsRetryable(r.err)):
					t.Errorf("request %d: %v; want every request of the failed call failed as unavailable", r.id, r.err)
				case each && inFailed && (!errors.Is(r.err, ErrUnavailable) || !errors.Is(r.err, busDown)):
					t.Errorf("request %d, in the failed record: %v; want unavailable", r.id, r.err)
				case each && !inFailed && r.err != nil:
					t.Errorf("request %d, not in the failed record: %v", r.id, r.err)
				}
			}
			want := 1 + 40 - len(failed)
			if !each {
				want = 1
			}
			if n := busItems(t, mem, otlpwire.Metrics, ""); n != want {
				t.Fatalf("%d items on the bus, want %d", n, want)
			}
		})
	}
}

// TestGroupCommitCancel: a client that goes away while its request is
// queued gets its answer at once and its chunk leaves the queue; one whose
// chunk is already in a record under way gets its answer at once too, and
// what it does with its buffers then cannot change that record.
func TestGroupCommitCancel(t *testing.T) {
	mem := newBus(t, 1)
	hb := &holdBus{Bus: mem, calls: make(chan *heldCall, 4)}
	ing := newIngester(t, Config{}, hb)
	results := make(chan exportResult, 32)
	ctx3, cancel3 := context.WithCancel(context.Background())
	first := startQueued(t, ing, hb, 5, func(id int) context.Context {
		if id == 3 {
			return ctx3
		}
		return context.Background()
	}, results)

	cancel3()
	if r := <-results; r.id != 3 || !errors.Is(r.err, context.Canceled) || !IsRetryable(r.err) {
		t.Fatalf("after the cancel: request %d, %v; want request 3 canceled, retryable", r.id, r.err)
	}
	if n := queuedParts(ing); n != 4 {
		t.Fatalf("%d chunks queued after the withdrawal, want 4", n)
	}

	// Request 6 is queued, then taken into the next record, then its
	// client goes away and scribbles over its body.
	ctx6, cancel6 := context.WithCancel(context.Background())
	body6 := pointRequest(t, 0, 6)
	go func() {
		_, err := ing.Export(ctx6, otlpwire.Metrics, "", body6)
		results <- exportResult{6, err}
	}()
	waitFor(t, "request 6 to queue", func() bool { return queuedParts(ing) == 5 })
	first.let(nil)
	if r := <-results; r.id != 0 || r.err != nil {
		t.Fatalf("request %d: %v; want request 0 ok", r.id, r.err)
	}
	next := <-hb.calls
	cancel6()
	if r := <-results; r.id != 6 || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("request %d: %v; want request 6 canceled", r.id, r.err)
	}
	for k := range body6 {
		body6[k] = 0xff
	}
	want := []string{"c0/1", "c0/2", "c0/4", "c0/5", "c0/6"}
	if got := senders(t, next.recs[0].Value); !slices.Equal(got, want) {
		t.Fatalf("record holds %v, want %v", got, want)
	}
	next.let(nil)
	for range 4 {
		if r := <-results; r.err != nil {
			t.Errorf("request %d: %v", r.id, r.err)
		}
	}
	if n := busItems(t, mem, otlpwire.Metrics, ""); n != 6 {
		t.Fatalf("%d items on the bus, want 6 (requests 0-2, 4-6)", n)
	}
}

// TestGroupCommitReuse: a flusher packs each call's records into a buffer
// of its own that it reuses for the next call only once the bus has
// acknowledged every record: after a failed call, which the bus may still
// hold, the next call's records are packed elsewhere.
func TestGroupCommitReuse(t *testing.T) {
	busDown := fmt.Errorf("test: %w", stream.ErrUnavailable)
	mem := newBus(t, 1)
	hb := &holdBus{Bus: mem, calls: make(chan *heldCall, 4)}
	ing := newIngester(t, Config{}, hb)
	results := make(chan exportResult, 32)
	queued := 5
	first := startQueued(t, ing, hb, queued, func(int) context.Context { return context.Background() }, results)
	// queue sends requests from..to, each once the one before is queued.
	queue := func(from, to int) {
		for id := from; id <= to; id++ {
			go func() {
				_, err := ing.Export(context.Background(), otlpwire.Metrics, "", pointRequest(t, 0, id))
				results <- exportResult{id, err}
			}()
			waitFor(t, fmt.Sprintf("request %d to queue", id), func() bool { return queuedParts(ing) == id-from+1 })
		}
	}
	want := func(from, to int) []string {
		var w []string
		for id := from; id <= to; id++ {
			w = append(w, fmt.Sprintf("c0/%d", id))
		}
		return w
	}
	answers := func(n int, failed bool) {
		t.Helper()
		for range n {
			if r := <-results; (r.err != nil) != failed {
				t.Errorf("request %d: %v; want failed %v", r.id, r.err, failed)
			}
		}
	}
	first.let(nil)
	answers(1, false)

	// A call that fails: the bus keeps its record.
	failedCall := <-hb.calls
	kept := failedCall.recs[0].Value
	keptCopy := slices.Clone(kept)
	queue(6, 10)
	failedCall.let(func(int) error { return busDown })
	answers(queued, true)

	// The next call succeeds; the one after may reuse its buffer.
	ok := <-hb.calls
	if got := senders(t, ok.recs[0].Value); !slices.Equal(got, want(6, 10)) {
		t.Fatalf("record after the failed call holds %v, want %v", got, want(6, 10))
	}
	if !slices.Equal(kept, keptCopy) {
		t.Fatal("the record of the failed call was overwritten by the next call's")
	}
	queue(11, 16)
	ok.let(nil)
	answers(5, false)
	last := <-hb.calls
	if got := senders(t, last.recs[0].Value); !slices.Equal(got, want(11, 16)) {
		t.Fatalf("record after a successful call holds %v, want %v", got, want(11, 16))
	}
	last.let(nil)
	answers(6, false)
	if n := busItems(t, mem, otlpwire.Metrics, ""); n != 1+5+6 {
		t.Fatalf("%d items on the bus, want 12 (requests 0, 6-16)", n)
	}
}

// TestGroupCommitTenants: concurrent requests of several tenants on one
// partition never share a record.
func TestGroupCommitTenants(t *testing.T) {
	mem := newBus(t, 1)
	ing := newIngester(t, Config{}, mem)
	var wg sync.WaitGroup
	for c := range 24 {
		tenant := fmt.Sprintf("t%d", c%3)
		wg.Go(func() {
			for seq := range 40 {
				// The client number carries the tenant: c mod 3.
				if _, err := ing.Export(context.Background(), otlpwire.Metrics, tenant, pointRequest(t, c, seq)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	recs := mem.Records(testTopics.Raw(otlpwire.Metrics))
	items := 0
	for _, r := range recs {
		tenant := string(r.Header(stream.HeaderTenant))
		for _, s := range senders(t, r.Value) {
			var c, seq int
			fmt.Sscanf(s, "c%d/%d", &c, &seq)
			if want := fmt.Sprintf("t%d", c%3); tenant != want {
				t.Fatalf("record of tenant %s holds a request of tenant %s", tenant, want)
			}
			items++
		}
	}
	if items != 24*40 {
		t.Fatalf("%d items, want %d", items, 24*40)
	}
	t.Logf("%d requests in %d records", items, len(recs))
}
