package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/backendtest"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/otlpjson"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
)

// The replay tests write raw records in three windows of record time (an
// hour apart, timestamps set on the records), replay the middle window
// through a changed rule set into a file sink of its own, and read what
// arrived.
const (
	replayRecords   = 6  // raw records per window and signal
	replayLogs      = 10 // log records per raw record
	replayPoints    = 8  // data points per raw metrics record (one pod each)
	replayTenant    = "acme"
	replayPartition = 3
)

// replayRules is the changed rule set: it tags every log record, drops
// the debug ones, and merges the pods of one metric.
const replayRules = `
rules:
  - name: tag-replayed
    signal: logs
    set:
      attributes["replayed"]: '"yes"'
  - name: drop-debug
    signal: logs
    when: severity_number < 9
    drop: true
  - name: requests-without-pod
    signal: metrics
    when: name == "replay.requests"
    aggregate: {without: [pod], interval: 30s}
`

// replayConfig is a config on the bus of busYAML with the file sink
// "backfill" (and a remote-write sink that replay never reaches), the live
// rules in rules/ (none) and the new ones in rules-new/.
func replayConfig(t *testing.T, dir, busYAML string) *config.Config {
	t.Helper()
	return replayConfigProm(t, dir, busYAML, "http://127.0.0.1:1/api/v1/push")
}

// replayConfigProm is replayConfig with the remote-write sink "mimir"
// writing to promURL.
func replayConfigProm(t *testing.T, dir, busYAML, promURL string) *config.Config {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "rules-new"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules-new", "replay.yaml"), []byte(replayRules), 0o644); err != nil {
		t.Fatal(err)
	}
	return loadYAML(t, dir, fmt.Sprintf(`
bus:
%s
  data_dir: %q
  partitions: %d
rules:
  dir: %q
sinks:
  - name: backfill
    type: file
    signals: [metrics, logs]
    path: %q
    max_age: 90m
  - name: mimir
    type: prometheus_remote_write
    signals: [metrics]
    url: %s
    max_age: 1h
log:
  level: warn
`, busYAML, filepath.Join(dir, "data"), replayPartition, filepath.Join(dir, "rules"), filepath.Join(dir, "out"), promURL))
}

// replayData is what the tests wrote: the times of the windows and, per
// window, the log records (by their "seq" attribute) and their times.
type replayData struct {
	base [3]time.Time
	logs [3]map[string]uint64 // seq → time_unix_nano
}

func kv(k, v string) *common.KeyValue {
	return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
}

// writeWindows produces the raw records of the three windows, in window
// order, spread over the partitions.
func writeWindows(t *testing.T, bus stream.Bus, topics stream.Topics, now time.Time) *replayData {
	t.Helper()
	return writeWindowsThen(t, bus, topics, now, nil)
}

// writeWindowsThen is writeWindows calling after once each window is
// written.
func writeWindowsThen(t *testing.T, bus stream.Bus, topics stream.Topics, now time.Time, after func(w int)) *replayData {
	t.Helper()
	d := &replayData{}
	var recs []*stream.Record
	for w := range 3 {
		d.base[w] = now.Add(time.Duration(w-3) * time.Hour).Truncate(time.Minute)
		d.logs[w] = map[string]uint64{}
		for r := range replayRecords {
			at := d.base[w].Add(time.Duration(r) * time.Second)
			res := &resource.Resource{Attributes: []*common.KeyValue{kv("service.name", "replayer"), kv("service.instance.id", fmt.Sprintf("node-%d", r%replayPartition))}}
			lr := &logspb.ScopeLogs{}
			for i := range replayLogs {
				seq := fmt.Sprintf("%d-%d-%d", w, r, i)
				ts := uint64(at.Add(time.Duration(i) * time.Millisecond).UnixNano())
				sev := logspb.SeverityNumber_SEVERITY_NUMBER_INFO
				if i%4 == 0 {
					sev = logspb.SeverityNumber_SEVERITY_NUMBER_DEBUG
				} else {
					d.logs[w][seq] = ts
				}
				lr.LogRecords = append(lr.LogRecords, &logspb.LogRecord{TimeUnixNano: ts, SeverityNumber: sev,
					Body:       &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: "line " + seq}},
					Attributes: []*common.KeyValue{kv("seq", seq), kv("window", strconv.Itoa(w))}})
			}
			logs, err := proto.Marshal(&collogs.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{Resource: res, ScopeLogs: []*logspb.ScopeLogs{lr}}}})
			if err != nil {
				t.Fatal(err)
			}
			var pts []*metricspb.NumberDataPoint
			for p := range replayPoints {
				pts = append(pts, &metricspb.NumberDataPoint{TimeUnixNano: uint64(at.UnixNano()), StartTimeUnixNano: uint64(d.base[0].UnixNano()),
					Value:      &metricspb.NumberDataPoint_AsInt{AsInt: int64(10*w + r)},
					Attributes: []*common.KeyValue{kv("pod", fmt.Sprintf("pod-%d", p)), kv("route", "/x")}})
			}
			metrics, err := proto.Marshal(&colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{Resource: res,
				ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{{Name: "replay.requests",
					Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{IsMonotonic: true, AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE, DataPoints: pts}}}}}}}}})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range []struct {
				sig   otlpwire.Signal
				val   []byte
				items int
			}{{otlpwire.Logs, logs, replayLogs}, {otlpwire.Metrics, metrics, replayPoints}} {
				recs = append(recs, &stream.Record{Topic: topics.Raw(v.sig), Partition: int32(r % replayPartition), Value: v.val, Timestamp: at,
					Headers: []stream.Header{
						{Key: stream.HeaderContentType, Value: []byte("application/x-protobuf")},
						{Key: stream.HeaderTenant, Value: []byte(replayTenant)},
						{Key: stream.HeaderItems, Value: []byte(strconv.Itoa(v.items))},
						{Key: stream.HeaderSignal, Value: []byte(v.sig.String())},
					}})
			}
		}
		// One produce per window: on NATS the store time orders the windows.
		if err := bus.Produce(context.Background(), recs...); err != nil {
			t.Fatal(err)
		}
		recs = recs[:0]
		if after != nil {
			after(w)
		}
	}
	return d
}

// eachSinkLog calls f with every log record the file sink wrote under
// dir for the replay's tenant; none when it wrote nothing.
func eachSinkLog(t *testing.T, dir string, f func(*logspb.LogRecord)) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "out", replayTenant, "logs.jsonl"))
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for line := range bytes.Lines(b) {
		pb, err := otlpjson.UnmarshalRequest(otlpwire.Logs, bytes.TrimSpace(line), nil)
		if err != nil {
			t.Fatal(err)
		}
		var req collogs.ExportLogsServiceRequest
		if err := proto.Unmarshal(pb, &req); err != nil {
			t.Fatal(err)
		}
		for _, rl := range req.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				for _, l := range sl.LogRecords {
					f(l)
				}
			}
		}
	}
}

// sinkLogs reads the file sink's logs: per seq, how often it arrived, and
// checks each against the new rules and its original time.
func sinkLogs(t *testing.T, dir string, d *replayData, window int) map[string]int {
	t.Helper()
	got := map[string]int{}
	eachSinkLog(t, dir, func(l *logspb.LogRecord) {
		attrs := map[string]string{}
		for _, a := range l.Attributes {
			attrs[a.Key] = a.Value.GetStringValue()
		}
		seq := attrs["seq"]
		got[seq]++
		want, ok := d.logs[window][seq]
		switch {
		case !ok:
			t.Errorf("log %q arrived: not of window %d, or dropped by the rules", seq, window)
		case l.TimeUnixNano != want:
			t.Errorf("log %q: time %d, want the original %d", seq, l.TimeUnixNano, want)
		case attrs["replayed"] != "yes" || attrs["window"] != strconv.Itoa(window):
			t.Errorf("log %q: attributes %v, want replayed=yes (the new rules) and window=%d", seq, attrs, window)
		}
	})
	return got
}

// checkExactlyOnce checks that every log of the window arrived once.
func checkExactlyOnce(t *testing.T, got map[string]int, d *replayData, window int) {
	t.Helper()
	for seq := range d.logs[window] {
		if got[seq] != 1 {
			t.Errorf("log %q arrived %d times, want once", seq, got[seq])
		}
	}
	if len(got) != len(d.logs[window]) {
		t.Errorf("%d distinct logs arrived, want %d", len(got), len(d.logs[window]))
	}
}

// sinkPoints reads the merged metric points of the file sink: per
// timestamp, the value and the attributes.
func sinkPoints(t *testing.T, dir string) []*metricspb.NumberDataPoint {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "out", replayTenant, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var pts []*metricspb.NumberDataPoint
	for line := range bytes.Lines(b) {
		pb, err := otlpjson.UnmarshalRequest(otlpwire.Metrics, bytes.TrimSpace(line), nil)
		if err != nil {
			t.Fatal(err)
		}
		var req colmetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(pb, &req); err != nil {
			t.Fatal(err)
		}
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					pts = append(pts, m.GetSum().GetDataPoints()...)
				}
			}
		}
	}
	return pts
}

func kafkaReplayBus(t *testing.T) (*config.Config, stream.Bus, string) {
	t.Helper()
	return kafkaReplayBusProm(t, "http://127.0.0.1:1/api/v1/push")
}

func kafkaReplayBusProm(t *testing.T, promURL string) (*config.Config, stream.Bus, string) {
	t.Helper()
	brokers := kafkatest.Brokers(t)
	dir := t.TempDir()
	cfg := replayConfigProm(t, dir, fmt.Sprintf("  kind: kafka\n  topic_prefix: %s\n  kafka:\n    brokers: [%s]", kafkatest.Topic(t, "replay"), strings.Join(brokers, ",")), promURL)
	return cfg, openReplayBus(t, cfg), dir
}

func embeddedReplayBus(t *testing.T) (*config.Config, stream.Bus, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := replayConfig(t, dir, "  kind: embedded")
	return cfg, openReplayBus(t, cfg), dir
}

func openReplayBus(t *testing.T, cfg *config.Config) stream.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bus, err := OpenBus(ctx, cfg, testLogger(t), nil) // the test writes the topics through it too
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	return bus
}

func replayCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// The middle window, through the new rules, into the file sink: exactly
// its logs, each once, tagged by the new rules, debug ones dropped,
// original timestamps; its metric points merged over the pods.
func TestReplayRangeKafka(t *testing.T) {
	cfg, bus, dir := kafkaReplayBus(t)
	testReplayRange(t, cfg, bus, dir)
}

// The same on the embedded NATS bus: the start is found by store time, the
// range ends at the first record at or after --to.
func TestReplayRangeEmbedded(t *testing.T) {
	cfg, bus, dir := embeddedReplayBus(t)
	testReplayRange(t, cfg, bus, dir)
}

// The replay commits nothing: no group of the broker holds a position in
// the test's topics.
func TestReplayCommitsNothingKafka(t *testing.T) {
	cfg, bus, dir := kafkaReplayBus(t)
	testReplayRange(t, cfg, bus, dir)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Bus.Kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := replayCtx(t)
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups.Groups() {
		offs, err := adm.FetchOffsets(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		offs.Each(func(o kadm.OffsetResponse) {
			if strings.HasPrefix(o.Topic, cfg.Bus.TopicPrefix+".") {
				t.Errorf("group %s has a position in %s[%d]", g, o.Topic, o.Partition)
			}
		})
	}
}

func testReplayRange(t *testing.T, cfg *config.Config, bus stream.Bus, dir string) {
	d := writeWindows(t, bus, stream.Topics{Prefix: cfg.Bus.TopicPrefix}, time.Now())
	rep, err := Replay(replayCtx(t), cfg, bus, ReplayOptions{From: d.base[1], To: d.base[2], Sink: "backfill",
		RulesDir: filepath.Join(dir, "rules-new"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete {
		t.Fatalf("replay not complete: %+v", rep)
	}
	checkExactlyOnce(t, sinkLogs(t, dir, d, 1), d, 1)

	// Metrics: 8 pods per raw record merged into one series per host;
	// each raw record's points fall in one 30s interval of their own.
	pts := sinkPoints(t, dir)
	if len(pts) == 0 {
		t.Fatal("no merged points arrived")
	}
	var total int64
	for _, p := range pts {
		for _, a := range p.Attributes {
			if a.Key == "pod" {
				t.Errorf("a merged point kept pod=%s", a.Value.GetStringValue())
			}
		}
		at := time.Unix(0, int64(p.TimeUnixNano))
		if at.Before(d.base[1]) || !at.Before(d.base[2].Add(30*time.Second)) {
			t.Errorf("merged point at %s: outside the middle window [%s, %s)", at, d.base[1], d.base[2])
		}
		total += p.GetAsInt()
	}
	// One series per host (pods merged), one 30s interval: host h's
	// cumulative counters of 8 pods add up, each at its last value, that
	// of record h+3 (10*w + r in window w=1).
	var want int64
	for h := range replayPartition {
		want += replayPoints * int64(10+h+replayPartition)
	}
	if len(pts) != replayPartition || total != want {
		t.Errorf("%d merged points summing to %d, want %d summing to %d (8 pods per host added up)", len(pts), total, replayPartition, want)
	}
	var in, out int64
	for _, s := range rep.Signals {
		if s.Signal == "logs" {
			in, out = s.ItemsIn, s.ItemsOut
		}
	}
	if in != replayRecords*replayLogs || out != int64(len(d.logs[1])) {
		t.Errorf("report: logs in %d, out %d; want %d, %d", in, out, replayRecords*replayLogs, len(d.logs[1]))
	}
	if _, err := os.Stat(filepath.Join(cfg.Bus.DataDir, "replay", "backfill.json")); !os.IsNotExist(err) {
		t.Errorf("a complete replay left its checkpoint: %v", err)
	}
}

// A dry run writes nothing and counts what each rule did.
func TestReplayDryRunKafka(t *testing.T) {
	cfg, bus, dir := kafkaReplayBus(t)
	d := writeWindows(t, bus, stream.Topics{Prefix: cfg.Bus.TopicPrefix}, time.Now())
	rep, err := Replay(replayCtx(t), cfg, bus, ReplayOptions{From: d.base[1], To: d.base[2], Sink: "backfill", DryRun: true,
		RulesDir: filepath.Join(dir, "rules-new"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "out", "*", "*")); len(files) > 0 {
		t.Errorf("a dry run wrote to the sink: %v", files)
	}
	if _, err := os.Stat(filepath.Join(cfg.Bus.DataDir, "replay")); !os.IsNotExist(err) {
		t.Errorf("a dry run wrote a checkpoint: %v", err)
	}
	logs := uint64(replayRecords * replayLogs)
	debug := uint64(replayRecords * ((replayLogs + 3) / 4))
	points := uint64(replayRecords * replayPoints)
	want := map[string]RuleReport{
		"tag-replayed":         {Matched: logs, Changed: logs},
		"drop-debug":           {Matched: debug, Dropped: debug},
		"requests-without-pod": {Matched: points, Merged: points},
	}
	for _, h := range rep.RuleHits {
		w, ok := want[h.Rule]
		if !ok {
			t.Errorf("unexpected rule %s in the report", h.Rule)
			continue
		}
		if h.Matched != w.Matched || h.Dropped != w.Dropped || h.Merged != w.Merged || (w.Changed > 0 && h.Changed != w.Changed) {
			t.Errorf("rule %s: %+v, want matched %d, dropped %d, changed %d, merged %d", h.Rule, h, w.Matched, w.Dropped, w.Changed, w.Merged)
		}
		delete(want, h.Rule)
	}
	for r := range want {
		t.Errorf("rule %s missing from the report", r)
	}
	var series *SeriesReport
	for i := range rep.Series {
		if rep.Series[i].Metric == "replay.requests" {
			series = &rep.Series[i]
		}
	}
	// 3 hosts × 8 pods before, 3 hosts after the pods are merged.
	if series == nil || series.Before != replayPartition*replayPoints || series.After != replayPartition {
		t.Errorf("series of replay.requests: %+v, want 24 before and 3 after", series)
	}
	for _, s := range rep.Signals {
		switch s.Signal {
		case "logs":
			if s.ItemsIn != int64(logs) || s.ItemsOut != int64(logs-debug) {
				t.Errorf("logs in %d out %d, want %d, %d", s.ItemsIn, s.ItemsOut, logs, logs-debug)
			}
		case "metrics":
			// One merged point per host and raw record (each record's
			// second falls in a 30s interval: records r=0..5 share one).
			if s.ItemsIn != int64(points) || s.ItemsOut == 0 || s.ItemsOut >= int64(points) {
				t.Errorf("metrics in %d out %d, want %d in and fewer out", s.ItemsIn, s.ItemsOut, points)
			}
		}
	}
	if len(rep.Warnings) == 0 || !strings.Contains(rep.Warnings[0], "backfill") || !strings.Contains(rep.Warnings[0], "max_age") {
		t.Errorf("a range 2h old into a sink of max_age 90m: warnings %q", rep.Warnings)
	}
}

// Stopped after two batches, resumed from the checkpoint: every log of
// the range arrives once (the batch in flight is delivered before the
// stop and the checkpoint is past it).
func TestReplayResumeKafka(t *testing.T) {
	cfg, bus, dir := kafkaReplayBus(t)
	testReplayResume(t, cfg, bus, dir)
}

func TestReplayResumeEmbedded(t *testing.T) {
	cfg, bus, dir := embeddedReplayBus(t)
	testReplayResume(t, cfg, bus, dir)
}

func testReplayResume(t *testing.T, cfg *config.Config, bus stream.Bus, dir string) {
	d := writeWindows(t, bus, stream.Topics{Prefix: cfg.Bus.TopicPrefix}, time.Now())
	opts := ReplayOptions{From: d.base[1], To: d.base[2], Sink: "backfill", Signals: []otlpwire.Signal{otlpwire.Logs},
		RulesDir: filepath.Join(dir, "rules-new"), MaxPollRecords: 1, Logger: testLogger(t)}
	ctx, cancel := context.WithCancel(replayCtx(t))
	batches := 0
	opts.Progress = func(ReplayProgress) {
		if batches++; batches == 2 {
			cancel()
		}
	}
	rep, err := Replay(ctx, cfg, bus, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Complete || rep.Checkpoint == "" {
		t.Fatalf("stopped replay: complete %v, checkpoint %q", rep.Complete, rep.Checkpoint)
	}
	first := sinkLogs(t, dir, d, 1)
	if n := len(first); n == 0 || n >= len(d.logs[1]) {
		t.Fatalf("%d logs arrived before the stop, want some but not all %d", n, len(d.logs[1]))
	}

	// Another range cannot resume this checkpoint.
	other := opts
	other.Progress, other.Resume, other.To = nil, true, d.base[2].Add(time.Minute)
	if _, err := Replay(replayCtx(t), cfg, bus, other); err == nil || !strings.Contains(err.Error(), "another replay") {
		t.Errorf("resume with another range: %v", err)
	}

	// The range may be left out: the checkpoint has it.
	opts.Progress, opts.Resume, opts.From, opts.To = nil, true, time.Time{}, time.Time{}
	rep, err = Replay(replayCtx(t), cfg, bus, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete {
		t.Fatal("resumed replay not complete")
	}
	checkExactlyOnce(t, sinkLogs(t, dir, d, 1), d, 1)
	if _, err := Replay(replayCtx(t), cfg, bus, opts); err == nil || !strings.Contains(err.Error(), "no checkpoint") {
		t.Errorf("resume after the end: %v", err)
	}
}

// --rate and --rate-bytes hold the replay back.
func TestReplayRateKafka(t *testing.T) {
	cfg, bus, dir := kafkaReplayBus(t)
	d := writeWindows(t, bus, stream.Topics{Prefix: cfg.Bus.TopicPrefix}, time.Now())
	start := time.Now()
	// 60 log items at 30/s with a burst of 30: at least a second.
	rep, err := Replay(replayCtx(t), cfg, bus, ReplayOptions{From: d.base[1], To: d.base[2], Sink: "backfill", Signals: []otlpwire.Signal{otlpwire.Logs},
		RulesDir: filepath.Join(dir, "rules-new"), Rate: 30, MaxPollRecords: 1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("60 items at --rate 30 took %s", took)
	}
	if rep.Progress.Items != replayRecords*replayLogs {
		t.Errorf("%d items replayed, want %d", rep.Progress.Items, replayRecords*replayLogs)
	}

	// --rate-bytes: a third of the range's bytes per second, burst as
	// much: at least two seconds.
	total := rep.Progress.Bytes
	start = time.Now()
	rep, err = Replay(replayCtx(t), cfg, bus, ReplayOptions{From: d.base[1], To: d.base[2], Sink: "backfill", Signals: []otlpwire.Signal{otlpwire.Logs},
		RulesDir: filepath.Join(dir, "rules-new"), RateBytes: float64(total) / 3, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 2*time.Second || rep.Progress.Bytes != total {
		t.Errorf("%d bytes at --rate-bytes %d took %s; want all %d in 2s or more", rep.Progress.Bytes, total/3, took, total)
	}
}

// Explicit Kafka offsets: the first two records of each partition.
func TestReplayOffsetsKafka(t *testing.T) {
	cfg, bus, dir := kafkaReplayBus(t)
	d := writeWindows(t, bus, stream.Topics{Prefix: cfg.Bus.TopicPrefix}, time.Now())
	// Each window wrote 2 log records to each partition: offsets 2-3 are
	// the middle window's.
	rep, err := Replay(replayCtx(t), cfg, bus, ReplayOptions{FromOffsets: stream.Positions{stream.AllPartitions: 2}, ToOffsets: stream.Positions{stream.AllPartitions: 4},
		Sink: "backfill", Signals: []otlpwire.Signal{otlpwire.Logs}, RulesDir: filepath.Join(dir, "rules-new"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete {
		t.Fatal("not complete")
	}
	checkExactlyOnce(t, sinkLogs(t, dir, d, 1), d, 1)
}

func TestReplayMaxAgeWarnings(t *testing.T) {
	now := time.Now()
	prom := &config.Sink{Name: "mimir", Type: "prometheus_remote_write", MaxAge: time.Hour}
	loki := &config.Sink{Name: "logs", Type: "loki", MaxAge: time.Hour}
	for _, tc := range []struct {
		entry *config.Sink
		from  time.Time
		want  string // "" no warning
	}{
		{prom, now.Add(-30 * time.Minute), ""},
		{prom, now.Add(-2 * time.Hour), "out_of_order_time_window"},
		{loki, now.Add(-2 * time.Hour), "max_chunk_age/2"},
		{&config.Sink{Name: "archive", Type: "file"}, now.Add(-48 * time.Hour), ""},
	} {
		w := maxAgeWarnings(tc.entry, tc.from, now)
		if tc.want == "" {
			if len(w) != 0 {
				t.Errorf("%s from %s: warned %q", tc.entry.Name, now.Sub(tc.from), w)
			}
			continue
		}
		if len(w) != 1 || !strings.Contains(w[0], tc.want) || !strings.Contains(w[0], tc.entry.Name) {
			t.Errorf("%s from %s: %q, want one naming the sink and %q", tc.entry.Name, now.Sub(tc.from), w, tc.want)
		}
	}
}

// Options that cannot work are refused before anything is read.
func TestReplayRefuses(t *testing.T) {
	cfg, bus, dir := embeddedReplayBus(t)
	from := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		opts ReplayOptions
		want string
	}{
		{ReplayOptions{From: from}, "a sink is required"},
		{ReplayOptions{From: from, Sink: "nope"}, `no sink named "nope"`},
		{ReplayOptions{Sink: "backfill"}, "needs a start"},
		{ReplayOptions{From: from, To: from.Add(-time.Minute), Sink: "backfill"}, "is not after"},
		{ReplayOptions{From: from, Sink: "mimir", Signals: []otlpwire.Signal{otlpwire.Logs}}, "does not take logs"},
		{ReplayOptions{From: from, Sink: "backfill", Topic: "processed", RulesDir: filepath.Join(dir, "rules-new")}, "processed records"},
		{ReplayOptions{From: from, Sink: "backfill", Resume: true}, "no checkpoint"},
	} {
		_, err := Replay(replayCtx(t), cfg, bus, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.opts, err, tc.want)
		}
	}
}

// --topic processed: what the live workers wrote goes to the sink as it
// is, the rules not applied again. By time; and by offset with
// exactly_once, where the processed topic holds transaction markers (the
// range ends on one), stamped with the time they were written, which is
// not the records' (back-dated here): the time index finds the markers.
func TestReplayProcessedKafka(t *testing.T)            { testReplayProcessed(t, false) }
func TestReplayProcessedExactlyOnceKafka(t *testing.T) { testReplayProcessed(t, true) }

func testReplayProcessed(t *testing.T, exactlyOnce bool) {
	cfg, bus, dir := kafkaReplayBus(t)
	cfg.Admin.Listen = ""
	cfg.Worker.ExactlyOnce = exactlyOnce
	cfg.Worker.Group = kafkatest.Group(t, "worker")
	cfg.Worker.TransactionalID = kafkatest.Group(t, "tx")
	p, err := Start(context.Background(), cfg, Roles{Worker: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	topics := stream.Topics{Prefix: cfg.Bus.TopicPrefix}
	processed := func() int64 { // log items in the processed topic
		rep, err := Replay(replayCtx(t), cfg, bus, ReplayOptions{Topic: "processed", FromOffsets: stream.Positions{stream.AllPartitions: 0},
			DryRun: true, Signals: []otlpwire.Signal{otlpwire.Logs}, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return rep.Signals[0].ItemsIn
	}
	// One window at a time, so that no processed record holds two (its
	// timestamp is its first raw record's).
	var ends [3]stream.Positions
	d := writeWindowsThen(t, bus, topics, time.Now(), func(w int) {
		deadline := time.Now().Add(time.Minute)
		for processed() < int64((w+1)*replayRecords*replayLogs) {
			if time.Now().After(deadline) {
				t.Fatalf("the worker did not process window %d", w)
			}
			time.Sleep(100 * time.Millisecond)
		}
		var err error
		if ends[w], err = bus.(stream.Ranger).PositionsAt(replayCtx(t), topics.Processed(otlpwire.Logs), time.Time{}); err != nil {
			t.Fatal(err)
		}
	})
	opts := ReplayOptions{Topic: "processed", From: d.base[1], To: d.base[2], Sink: "backfill", Signals: []otlpwire.Signal{otlpwire.Logs}, Logger: testLogger(t)}
	if exactlyOnce {
		opts.From, opts.To, opts.FromOffsets, opts.ToOffsets = time.Time{}, time.Time{}, ends[0], ends[1]
	}
	rep, err := Replay(replayCtx(t), cfg, bus, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete {
		t.Fatal("not complete")
	}
	// No rules: the debug logs are there too, untagged.
	got := map[string]int{}
	eachSinkLog(t, dir, func(l *logspb.LogRecord) {
		seq := l.Attributes[0].Value.GetStringValue()
		got[seq]++
		if !strings.HasPrefix(seq, "1-") || len(l.Attributes) != 2 {
			t.Errorf("log %s with %d attributes arrived: want the middle window's, as the worker wrote them", seq, len(l.Attributes))
		}
	})
	if len(got) != replayRecords*replayLogs {
		t.Errorf("%d distinct logs arrived, want %d", len(got), replayRecords*replayLogs)
	}
	for seq, n := range got {
		if n != 1 {
			t.Errorf("log %s arrived %d times", seq, n)
		}
	}
}

// Into a real Prometheus: the middle window's points, merged over the
// pods by the new rules, at their interval's time two hours back, per
// instance the 8 pods' counters added up; the other windows absent.
func TestReplayIntoPrometheusKafka(t *testing.T) {
	prom := backendtest.Prometheus(t)
	cfg, bus, dir := kafkaReplayBusProm(t, prom.WriteURL)
	d := writeWindows(t, bus, stream.Topics{Prefix: cfg.Bus.TopicPrefix}, time.Now())
	rep, err := Replay(replayCtx(t), cfg, bus, ReplayOptions{From: d.base[1], To: d.base[2], Sink: "mimir",
		RulesDir: filepath.Join(dir, "rules-new"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete || rep.Rejected != 0 {
		t.Fatalf("complete %v, rejected %d", rep.Complete, rep.Rejected)
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "sink mimir") || !strings.Contains(rep.Warnings[0], "out_of_order_time_window") {
		t.Errorf("a range 2h old into a remote-write sink of max_age 1h: warnings %q", rep.Warnings)
	}
	for w, want := range map[int]int{0: 0, 1: replayPartition, 2: 0} {
		at := d.base[w].Add(time.Minute)
		got := backendtest.Query(t, prom.URL, `replay_requests_total`, at)
		if len(got) != want {
			t.Errorf("window %d: %d series at %s, want %d: %v", w, len(got), at, want, got)
			continue
		}
		for _, s := range got {
			h, _ := strconv.Atoi(strings.TrimPrefix(s.Metric["instance"], "node-"))
			if wantV := float64(replayPoints * (10 + h + replayPartition)); s.Value != wantV || s.Metric["pod"] != "" {
				t.Errorf("window %d: %v = %v, want %v and no pod label", w, s.Metric, s.Value, wantV)
			}
		}
	}
}

// Points whose series a rule changed without an aggregate or limit rule
// merge under "default": the dry run reports them so.
func TestReplayDryRunDefaultMerge(t *testing.T) {
	cfg, bus, dir := embeddedReplayBus(t)
	d := writeWindows(t, bus, stream.Topics{Prefix: cfg.Bus.TopicPrefix}, time.Now())
	rules := filepath.Join(dir, "rules-delete")
	os.MkdirAll(rules, 0o755)
	os.WriteFile(filepath.Join(rules, "r.yaml"), []byte("rules:\n  - name: no-pod\n    signal: metrics\n    delete: ['attributes[\"pod\"]']\n"), 0o644)
	rep, err := Replay(replayCtx(t), cfg, bus, ReplayOptions{From: d.base[1], To: d.base[2], DryRun: true, Signals: []otlpwire.Signal{otlpwire.Metrics},
		RulesDir: rules, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	points := uint64(replayRecords * replayPoints)
	want := fmt.Sprint([]RuleReport{{Rule: "no-pod", Signal: "metrics", File: filepath.Join(rules, "r.yaml"), Matched: points, Changed: points},
		{Rule: "default", Signal: "metrics", Merged: points}})
	if got := fmt.Sprint(rep.RuleHits); got != want {
		t.Errorf("rules %s, want %s", got, want)
	}
}
