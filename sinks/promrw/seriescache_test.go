package promrw

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// processedValue is bodies (OTLP metrics requests) as one processed record
// value; ok false when the layout cannot hold them.
func processedValue(t *testing.T, bodies ...[]byte) ([]byte, bool) {
	t.Helper()
	b := schemas.NewBuilder(otlpwire.Metrics, nil)
	defer b.Release()
	for _, body := range bodies {
		if _, err := b.Append(body); err != nil {
			return nil, false
		}
	}
	batch := b.Build()
	defer batch.Release()
	var buf bytes.Buffer
	if err := schemas.WriteBatch(&buf, batch); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), true
}

// twin is a translator and its collector.
type twin struct {
	col *collector
	tr  *translator
}

func newTwin(cfg *Config) *twin {
	w := &twin{col: &collector{maxSamples: cfg.MaxSamplesPerRequest, shards: cfg.Concurrency}}
	w.tr = newTranslator(cfg, w.col)
	return w
}

// requests is what the collector holds, one string per request.
func (w *twin) requests() []string {
	w.col.finish(false)
	var out []string
	for _, t := range w.col.tenants {
		for sh, reqs := range t.shards {
			for _, r := range reqs {
				out = append(out, fmt.Sprintf("tenant %q shard %d samples %d records %v body %x", t.tenant, sh, r.samples, r.recs, r.body))
			}
		}
	}
	return out
}

// TestSeriesCacheSameOutput: translators with the series cache (large,
// tiny enough to evict all the time, and with every key hash colliding)
// write exactly the requests of one without it, on random data, series
// seen again in later batches and under other tenants, the batches' Arrow
// buffers poisoned once released. One record of three holds its request
// twice, so that its attribute sets repeat and the translators look its
// series up per set (translator.memo), evictions happening meanwhile; all
// but the plain one read the records by set (schemas.ReadBatchSets), as
// the sink does.
func TestSeriesCacheSameOutput(t *testing.T) {
	pool := arrowpool.NewPoisoned()
	var hits, evictions, collisions, memoized uint64
	for seed := range uint64(150) {
		gen := otlptest.NewGen(seed, otlptest.GenOptions{Unknown: seed%3 == 0})
		r := gen.Rand()
		cfg := Config{MaxSamplesPerRequest: 1 + r.IntN(40), Concurrency: 1 + r.IntN(4)}
		if r.IntN(2) == 0 {
			cfg.ExponentialHistograms = expBuckets
		}
		if r.IntN(2) == 0 {
			cfg.Delta = deltaConvert
		}
		if r.IntN(2) == 0 {
			cfg.PromoteResourceAttributes = []string{"service.name", "http.route", "a", ""}
		}
		cfg.defaults()
		cfg.DisableScopeLabels, cfg.DisableTargetInfo = r.IntN(4) == 0, r.IntN(4) == 0

		plain := newTwin(&cfg)
		plain.tr.cache = nil
		large := newTwin(&cfg)
		tinyCfg := cfg
		tinyCfg.SeriesCacheBytes = 2 << 10
		tiny := newTwin(&tinyCfg)
		colliding := newTwin(&cfg)
		colliding.tr.keyHash = func([]byte) uint64 { return 42 }
		// interning tables that fill up and start again all the time
		forgetful := newTwin(&cfg)
		forgetful.tr.ids.max, forgetful.tr.setIDs.max = 3, 2
		// without the cache, the attributes read by set as the sink reads them
		plainBySet := newTwin(&cfg)
		plainBySet.tr.cache = nil
		twins := []*twin{plain, large, tiny, colliding, forgetful, plainBySet}

		var values [][]byte
		for len(values) < 3 {
			req := gen.Request(otlpwire.Metrics)
			bodies := [][]byte{req}
			if len(values) == 0 {
				bodies = append(bodies, req)
			}
			if v, ok := processedValue(t, bodies...); ok {
				values = append(values, v)
			}
		}
		// Four Writes of a few records each: the same requests again, under
		// two tenants, in another order.
		for write := range 4 {
			for _, w := range twins {
				w.col.reset()
			}
			for rec := range 3 + r.IntN(4) {
				value := values[r.IntN(len(values))]
				tenant := []string{"", "acme", "globex"}[r.IntN(3)]
				for _, w := range twins {
					// plain reads every point's attributes; the others read
					// them by set, as the sink does (schemas.ReadBatchSets)
					read := schemas.ReadBatchSets
					if w == plain {
						read = schemas.ReadBatch
					}
					b, err := read(value, pool)
					if err != nil {
						t.Fatal(err)
					}
					w.col.tenant(tenant)
					err = w.tr.translate(b, int32(rec))
					b.Release()
					memoized += uint64(w.tr.memo.n)
					if err != nil {
						t.Fatalf("seed %d: %v", seed, err)
					}
				}
			}
			want := plain.requests()
			for k, w := range twins[1:] {
				got := w.requests()
				if len(got) != len(want) {
					t.Fatalf("seed %d write %d, cache %d: %d requests, want %d", seed, write, k, len(got), len(want))
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("seed %d write %d, cache %d: request %d\n got %s\nwant %s", seed, write, k, i, got[i], want[i])
					}
				}
			}
			for _, w := range twins {
				if w.tr.delta != nil {
					w.tr.delta.commit(time.Now())
				}
			}
		}
		if tiny.tr.cache.bytes > int(tinyCfg.SeriesCacheBytes) {
			t.Fatalf("seed %d: the tiny cache holds %d bytes, bound %d", seed, tiny.tr.cache.bytes, tinyCfg.SeriesCacheBytes)
		}
		hits += large.tr.cache.hits
		evictions += tiny.tr.cache.evictions
		collisions += colliding.tr.cache.evictions
	}
	t.Logf("%d hits, %d evictions (tiny cache), %d entries replaced by colliding ones, %d series looked up per set", hits, evictions, collisions, memoized)
	if hits == 0 || evictions == 0 || collisions == 0 || memoized == 0 {
		t.Fatal("the test did not exercise the cache")
	}
}

// TestSeriesCacheKeys: attributes of the same raw bytes but another type
// are other series (an int and a double of the same bits, a string and
// bytes); the same series under another tenant is another entry.
func TestSeriesCacheKeys(t *testing.T) {
	ts := time.Now()
	bits := int64(math.Float64bits(1))
	req := otlpRequest([]*commonpb.KeyValue{str("service.name", "svc")},
		gauge("g", "", ts, 1, intAttr("k", bits)),
		gauge("g", "", ts, 2, &commonpb.KeyValue{Key: "k", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 1}}}),
		gauge("g", "", ts, 3, str("k", "abc")),
		gauge("g", "", ts, 4, &commonpb.KeyValue{Key: "k", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte("abc")}}}),
	)
	rec := record(t, req, "")
	cfg := Config{}
	cfg.defaults()
	cfg.DisableTargetInfo = true
	w := newTwin(&cfg)
	for _, tenant := range []string{"a", "a", "b"} {
		b, err := schemas.ReadBatch(rec.Value, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.col.reset()
		w.col.tenant(tenant)
		if err := w.tr.translate(b, 0); err != nil {
			t.Fatal(err)
		}
		w.col.finish(false)
		b.Release()
	}
	var got []string
	for _, reqs := range w.col.tenants[0].shards { // tenant b
		for _, r := range reqs {
			for p := r.body; len(p) > 0; {
				s, n := consumeBytes(p[1:])
				p = p[1+n:]
				for len(s) > 0 {
					num, typ, n := protowire.ConsumeTag(s)
					m := protowire.ConsumeFieldValue(num, typ, s[n:])
					if num == fTSLabels {
						if l := parseLabels(nil, s[:n+m]); len(l) == 1 && l[0].name == "k" {
							got = append(got, l[0].value)
						}
					}
					s = s[n+m:]
				}
			}
		}
	}
	slices.Sort(got)
	if want := []string{"1", "4607182418800017408", "YWJj", "abc"}; !slices.Equal(got, want) {
		t.Errorf("label k of the 4 series: %q, want %q", got, want)
	}
	if c := w.tr.cache; c.len() != 8 || c.hits != 4 || c.misses != 8 {
		t.Errorf("cache: %d series, %d hits, %d misses; want 8 (4 per tenant), 4, 8", c.len(), c.hits, c.misses)
	}
}

// TestSeriesCacheCollision: an entry whose key hash is another key's is
// not that key's; putting it replaces the older one.
func TestSeriesCacheCollision(t *testing.T) {
	c := newSeriesCache(1 << 20)
	c.put("", 7, []byte("key-a"), []byte("labels-a"), 1)
	if c.get(7, []byte("key-b")) != nil {
		t.Fatal("key-b found under key-a's hash")
	}
	c.put("", 7, []byte("key-b"), []byte("labels-b"), 2)
	if c.get(7, []byte("key-a")) != nil {
		t.Fatal("key-a still found")
	}
	if e := c.get(7, []byte("key-b")); e == nil || string(e.labels()) != "labels-b" || e.lhash != 2 {
		t.Fatalf("key-b: %+v", e)
	}
	if c.len() != 1 || c.bytes != len("key-b")+len("labels-b")+entryOverhead {
		t.Fatalf("%d entries, %d bytes", c.len(), c.bytes)
	}
}

// TestSeriesCacheClock: with room for 3 entries, the ones read since the
// hand last passed stay, a new entry takes the place of one that was not.
func TestSeriesCacheClock(t *testing.T) {
	key := func(i int) []byte { return fmt.Appendf(nil, "k%d", i) }
	c := newSeriesCache(3 * (4 + entryOverhead))
	for i := range 3 {
		c.put("", uint64(i), key(i), []byte("ll"), 0)
	}
	c.get(0, key(0))
	c.get(2, key(2))
	c.put("", 3, key(3), []byte("ll"), 0) // evicts 1, the only one not read
	for i, want := range []bool{true, false, true, true} {
		if ok := c.get(uint64(i), key(i)) != nil; ok != want {
			t.Errorf("entry %d present %v, want %v", i, ok, want)
		}
	}
	if c.evictions != 1 || c.bytes > c.maxBytes {
		t.Errorf("%d evictions, %d of %d bytes", c.evictions, c.bytes, c.maxBytes)
	}
	c.put("", 9, make([]byte, c.maxBytes), nil, 0) // larger than the cache: not kept
	if c.len() != 3 {
		t.Errorf("%d entries after a put larger than the cache", c.len())
	}
}

// When no entry is of the tenants evictFor may take from (here: a tenant
// said to hold bytes but holding no entry, so it must evict its own), it
// falls back to plain CLOCK and still evicts one entry: the first not read
// since the hand last passed.
func TestSeriesCacheEvictFallback(t *testing.T) {
	key := func(i int) []byte { return fmt.Appendf(nil, "k%d", i) }
	c := newSeriesCache(1 << 20)
	for i := range 3 {
		c.put("a", uint64(i), key(i), []byte("ll"), 0)
	}
	c.get(0, key(0))
	ghost := uint32(len(c.tenantBytes))
	c.tenantIDs["ghost"] = ghost
	c.tenantBytes = append(c.tenantBytes, c.maxBytes)
	c.evictFor(ghost, 1)
	for i, want := range []bool{true, false, true} {
		if ok := c.get(uint64(i), key(i)) != nil; ok != want {
			t.Errorf("entry %d present %v, want %v", i, ok, want)
		}
	}
	if c.evictions != 1 {
		t.Errorf("%d evictions, want 1", c.evictions)
	}
}

// A tenant churning through series evicts its own entries once at its
// share of the cache, never another tenant's working set that fits in its
// share; the cache stays within its bytes.
func TestSeriesCacheFairBetweenTenants(t *testing.T) {
	key := func(tenant string, i int) []byte { return fmt.Appendf(nil, "%s%04d", tenant, i) }
	c := newSeriesCache(20 * (16 + entryOverhead)) // about 20 entries

	for i := range 5 {
		c.put("quiet", uint64(1000+i), key("quiet", i), []byte("ll"), 0)
	}
	for round := range 3 {
		for i := range 5 {
			if c.get(uint64(1000+i), key("quiet", i)) == nil {
				t.Fatalf("round %d: the quiet tenant's entry %d was evicted", round, i)
			}
		}
		for i := range 200 { // the noisy tenant: forty times its share
			c.put("noisy", uint64(round*1000000+i), key("noisy", round*1000000+i), []byte("ll"), 0)
		}
	}
	if c.bytes > c.maxBytes || c.evictions == 0 {
		t.Errorf("%d of %d bytes, %d evictions", c.bytes, c.maxBytes, c.evictions)
	}
}

// BenchmarkSeriesCacheChurn: a put per iteration into a full cache of about
// 10,000 entries (every put evicts), with a get of a recent entry every
// other iteration (its reference bit spares it once); one tenant, and one
// churning beside a quiet tenant of 1,000 entries. cpu-ns/op is the
// process' CPU time per put, steadier than ns/op on a busy machine.
func BenchmarkSeriesCacheChurn(b *testing.B) {
	const entries, entrySize = 10_000, 16 + 2 + entryOverhead
	key := func(dst []byte, tenant byte, i int) []byte { return fmt.Appendf(dst[:0], "%c%015d", tenant, i) }
	for _, tenants := range []int{1, 2} {
		b.Run(fmt.Sprintf("tenants=%d", tenants), func(b *testing.B) {
			c := newSeriesCache(entries * entrySize)
			var k []byte
			if tenants == 2 {
				for i := range entries / 10 {
					k = key(k, 'q', i)
					c.put("quiet", uint64(1<<40+i), k, []byte("ll"), 0)
				}
			}
			i := 0
			for ; i < entries; i++ {
				k = key(k, 'n', i)
				c.put("noisy", uint64(i), k, []byte("ll"), 0)
			}
			c.evictions = 0
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				k = key(k, 'n', i)
				c.put("noisy", uint64(i), k, []byte("ll"), 0)
				if i%2 == 0 {
					k = key(k, 'n', i-entries/4)
					c.get(uint64(i-entries/4), k)
				}
				i++
			}
			b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
			if c.evictions == 0 || c.bytes > c.maxBytes {
				b.Fatalf("%d evictions, %d of %d bytes", c.evictions, c.bytes, c.maxBytes)
			}
		})
	}
}

// TestSetMemo: the memo answers as a map does, new, across growth and
// resets (nothing of an earlier generation is found again), and at its
// bound (where it starts again empty).
func TestSetMemo(t *testing.T) {
	var m setMemo
	r := otlptest.NewGen(3, otlptest.GenOptions{}).Rand()
	for gen := range 50 {
		if gen > 0 {
			m.reset()
		}
		want := map[memoKey]uint32{}
		for range r.IntN(3000) {
			// few bases and names, so that keys collide on one or two parts
			k := memoKey{uint64(r.IntN(8)), uint64(r.IntN(8)), uint64(r.IntN(64))}
			got, ok := m.get(k)
			w, wok := want[k]
			if ok != wok || got != w {
				t.Fatalf("generation %d: get(%v) = %d, %v; want %d, %v", gen, k, got, ok, w, wok)
			}
			if !ok {
				s := uint32(r.IntN(1 << 20))
				m.put(k, s)
				want[k] = s
			}
		}
		if m.n != len(want) {
			t.Fatalf("generation %d: %d entries, want %d", gen, m.n, len(want))
		}
	}
	// Past its bound: the entries before the last reset are gone, those
	// after it found.
	m.reset()
	var since []memoKey
	for k := range uint64(maxMemoSlots) {
		key := memoKey{k, 1, 2}
		gen := m.gen
		m.put(key, uint32(k))
		if m.gen != gen {
			since = since[:0]
		}
		since = append(since, key)
	}
	if len(m.slots) != maxMemoSlots || len(since) == maxMemoSlots {
		t.Fatalf("%d slots, %d entries since the last reset: the bound was not reached", len(m.slots), len(since))
	}
	for _, k := range since {
		if s, ok := m.get(k); !ok || s != uint32(k.base) {
			t.Fatalf("get(%v) = %d, %v after the reset", k, s, ok)
		}
	}
	if _, ok := m.get(memoKey{0, 1, 2}); ok {
		t.Fatal("an entry of before the reset was found")
	}
}

// TestSetMemoLeftOff: after a record whose one attribute set repeats only
// across resources (every point another series), the memo is left off for
// memoSkipBatches records, then tried again; where the set repeats within
// a resource (4 points a series), it stays on. Either way the requests are
// those of a translator without the cache.
func TestSetMemoLeftOff(t *testing.T) {
	for _, tc := range []struct {
		name      string
		resources int
		points    int // per resource, each of the same set
		kept      bool
	}{{"across", 300, 1, false}, {"within", 100, 4, true}} {
		t.Run(tc.name, func(t *testing.T) {
			req := &colmetricspb.ExportMetricsServiceRequest{}
			for r := range tc.resources {
				var pts []*metricspb.NumberDataPoint
				for p := range tc.points {
					pts = append(pts, &metricspb.NumberDataPoint{
						Attributes:   []*commonpb.KeyValue{{Key: "route", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "/"}}}},
						TimeUnixNano: uint64(1_700_000_000+p) * 1e9,
						Value:        &metricspb.NumberDataPoint_AsDouble{AsDouble: float64(r)},
					})
				}
				req.ResourceMetrics = append(req.ResourceMetrics, &metricspb.ResourceMetrics{
					Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: fmt.Sprint("svc-", r)}}}}},
					ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{{Name: "up",
						Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: pts}}}}}},
				})
			}
			body, err := proto.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			value, ok := processedValue(t, body)
			if !ok {
				t.Fatal("not a processed record")
			}
			cfg := Config{}
			cfg.defaults()
			plain, cached := newTwin(&cfg), newTwin(&cfg)
			plain.tr.cache = nil
			for rec := range memoSkipBatches + 2 {
				for _, w := range []*twin{plain, cached} {
					b, err := schemas.ReadBatch(value, nil)
					if err != nil {
						t.Fatal(err)
					}
					if len(b.ItemAttrSets) != b.Len() {
						t.Fatalf("%d sets for %d points", len(b.ItemAttrSets), b.Len())
					}
					w.col.reset()
					w.col.tenant("")
					err = w.tr.translate(b, 0)
					b.Release()
					if err != nil {
						t.Fatal(err)
					}
				}
				// on for the first record and, after the skipped ones, the last
				want := tc.kept || rec == 0 || rec == memoSkipBatches+1
				if on := cached.tr.memoOn; on != want {
					t.Fatalf("record %d: memo on %v (%d lookups, %d hits), want %v", rec, on, cached.tr.memoTries, cached.tr.memoHits, want)
				}
				// The memo holds from record to record: the series of the
				// first are all found in the later ones, all but the first
				// as the series that followed the previous point's.
				if on := cached.tr.memoOn; on && rec > 0 && (cached.tr.memoHits != cached.tr.memoTries || cached.tr.predHits != cached.tr.memoTries-1) {
					t.Fatalf("record %d: %d of %d points found in the memo, %d of them as the next series; want all, all but one", rec, cached.tr.memoHits, cached.tr.memoTries, cached.tr.predHits)
				}
				if !slices.Equal(plain.requests(), cached.requests()) {
					t.Fatalf("record %d: the requests differ from those of a translator without the cache", rec)
				}
			}
		})
	}
}
