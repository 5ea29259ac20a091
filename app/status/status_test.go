package status

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/stream"
)

func deadLetter(origin, tenant, reason string, value []byte, extra ...stream.Header) *stream.Record {
	hdrs := append([]stream.Header{{Key: stream.HeaderTenant, Value: []byte(tenant)}, stream.ErrorHeader(reason),
		{Key: stream.HeaderOrigin, Value: []byte(origin)}}, extra...)
	return &stream.Record{Topic: "sluice.dlq", Value: value, Headers: hdrs}
}

// The ring keeps the last n dead letters, newest first, and counts all of
// them; a cut dead letter shows its original size.
func TestDeadLettersRing(t *testing.T) {
	d := NewDeadLetters(3)
	if got, seen := d.Last(); len(got) != 0 || seen != 0 {
		t.Fatalf("empty ring: %v, %d", got, seen)
	}
	d.Hook("worker", []*stream.Record{deadLetter("raw/0/1", "a", "r1", make([]byte, 10)), deadLetter("raw/0/2", "b", "r2", make([]byte, 20))})
	got, seen := d.Last()
	if seen != 2 || len(got) != 2 || got[0].Origin != "raw/0/2" || got[1].Origin != "raw/0/1" || got[0].Stage != "worker" || got[0].Tenant != "b" || got[0].Reason != "r2" || got[0].Bytes != 20 {
		t.Fatalf("after two: %+v, %d", got, seen)
	}
	d.Hook("sink/x", []*stream.Record{
		deadLetter("p/1/3", "c", "r3", nil, stream.Header{Key: stream.HeaderTruncated, Value: []byte("123456")}),
		deadLetter("p/1/4", "d", "r4", nil),
		deadLetter("p/1/5", "e", "r5", []byte("x")),
	})
	got, seen = d.Last()
	if seen != 5 || len(got) != 3 {
		t.Fatalf("after five: %d kept, %d seen", len(got), seen)
	}
	if got[0].Origin != "p/1/5" || got[1].Origin != "p/1/4" || got[2].Origin != "p/1/3" {
		t.Errorf("order %s %s %s, want p/1/5 p/1/4 p/1/3", got[0].Origin, got[1].Origin, got[2].Origin)
	}
	if got[2].Bytes != 123456 || !got[2].Truncated {
		t.Errorf("cut dead letter: %d bytes, truncated %v; want 123456, true", got[2].Bytes, got[2].Truncated)
	}
}

// Rates come from the samples of the registry: an increase of 50 since a
// sample 10 seconds old is 5 per second; a minute back there is no sample
// yet, so no rate. Totals are the registry's now.
func TestRates(t *testing.T) {
	reg := prometheus.NewRegistry()
	in := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_worker_items_in_total", Help: "h"}, []string{"signal"})
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_consumer_lag_records", Help: "h"}, []string{"stage"})
	reg.MustRegister(in, lag)
	in.WithLabelValues("logs").Add(7)
	s := New(Options{Gatherer: reg, Pipeline: Pipeline{Stages: []Stage{{Name: "worker", Kind: KindWorker}}}})
	if _, err := s.sample(time.Now().Add(-10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	in.WithLabelValues("logs").Add(20)
	in.WithLabelValues("metrics").Add(30)
	lag.WithLabelValues("worker").Set(12)
	lag.WithLabelValues("sink/x").Set(99)

	st, err := s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w := st.Stages[0]
	n := w.Numbers["in"]
	if n.Total != 57 {
		t.Errorf("in total %v, want 57", n.Total)
	}
	if n.Rate10s == nil || math.Abs(*n.Rate10s-5) > 0.05 {
		t.Errorf("in rate over 10s %v, want 5", n.Rate10s)
	}
	if n.Rate1m != nil {
		t.Errorf("in rate over 1m %v, want none (no sample that old)", *n.Rate1m)
	}
	if w.Lag == nil || *w.Lag != 12 {
		t.Errorf("lag %v, want 12 (the worker's, not the sink's)", w.Lag)
	}
	if w.Sources["in"] != "sum(sluice_worker_items_in_total)" || w.Sources["errors"] != `sum(sluice_stage_handle_errors_total{stage="worker"})` {
		t.Errorf("sources %v", w.Sources)
	}
	if d := w.Numbers["dead_letters"]; d.Total != 0 || d.Rate10s == nil || *d.Rate10s != 0 {
		t.Errorf("dead letters with no series: %+v, want 0 at 0/s", d)
	}
}

// A rule's counters that went down (the rules were reloaded: the new set
// counts from zero) rate from zero, never negative.
func TestRateAfterReset(t *testing.T) {
	if r := rate(5, 100, 10*time.Second); r != 0.5 {
		t.Errorf("rate after reset %v, want 0.5", r)
	}
}

// hostile is markup that runs script wherever it is not escaped.
const hostile = `<img src=x onerror="document.title='pwned'"><script>alert(1)</script>`

// Names and reasons are shown as text: a rule named with markup, a dead
// letter whose tenant and reason hold markup, a readiness check whose
// error does, all come out escaped in the page and as plain strings in
// the JSON.
func TestPageEscapes(t *testing.T) {
	reg := prometheus.NewRegistry()
	matched := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_rule_matched_total", Help: "h"}, []string{"rule", "signal", "file"})
	reg.MustRegister(matched)
	matched.WithLabelValues(hostile, "logs", "x.yaml").Add(3)
	dl := NewDeadLetters(0)
	dl.Hook("worker", []*stream.Record{deadLetter("sluice.raw.logs/0/7", hostile, "bad: "+hostile, []byte("v"))})
	s := New(Options{Gatherer: reg, DeadLetters: dl, Pipeline: Pipeline{Version: hostile, Stages: []Stage{{Name: "worker", Kind: KindWorker}}},
		Failing: func(context.Context) []string { return []string{"bus: " + hostile} }})
	srv := httptest.NewServer(s.Page())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, page)
	}
	if strings.Contains(page, "<img") || strings.Contains(page, "<script>alert") {
		t.Errorf("markup of a name reached the page unescaped:\n%s", page)
	}
	esc := "&lt;img src=x onerror=&#34;document.title=&#39;pwned&#39;&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
	if n := strings.Count(page, esc); n < 5 { // version, not-ready, rule, tenant, reason
		t.Errorf("%d escaped copies of the hostile string, want 5 (version, readiness, rule, tenant, reason)", n)
	}
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", resp.Header.Get("Content-Security-Policy"))
	}

	rec := httptest.NewRecorder()
	s.API().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/status", nil))
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ready || len(st.NotReady) != 1 || st.NotReady[0] != "bus: "+hostile {
		t.Errorf("readiness %v %q", st.Ready, st.NotReady)
	}
	if len(st.Rules) != 1 || st.Rules[0].Rule != hostile || st.Rules[0].Matched.Total != 3 {
		t.Errorf("rules %+v", st.Rules)
	}
	if len(st.DeadLetters) != 1 || st.DeadLetters[0].Tenant != hostile || st.DeadLetters[0].Reason != "bad: "+hostile {
		t.Errorf("dead letters %+v", st.DeadLetters)
	}
}

// The page's numbers are written as the script writes them.
func TestFormat(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {1234567, "1,234,567"}, {-1234, "-1,234"}, {2.5, "2.5"}} {
		if got := formatNumber(c.v); got != c.want {
			t.Errorf("formatNumber(%v) = %q, want %q", c.v, got, c.want)
		}
	}
	for _, c := range []struct {
		v    float64
		want string
	}{{1.234, "1.23"}, {12.34, "12.3"}, {98314.26, "98,314"}, {0, "0"}} {
		if got := formatRate(&c.v); got != c.want {
			t.Errorf("formatRate(%v) = %q, want %q", c.v, got, c.want)
		}
	}
	if got := formatRate(nil); got != "–" {
		t.Errorf("formatRate(nil) = %q", got)
	}
}
