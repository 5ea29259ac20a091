package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/app"
	"github.com/sluice-dev/sluice/internal/backendtest"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
)

// gauges is an OTLP metrics request with one point at ts for each series
// name{s="<i>", extra...} (i < n).
func gauges(name string, n int, ts time.Time, extra ...*common.KeyValue) *colmetrics.ExportMetricsServiceRequest {
	sm := &metrics.ScopeMetrics{Scope: &common.InstrumentationScope{Name: "fault"}}
	for i := range n {
		attrs := append([]*common.KeyValue{{Key: "s", Value: &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: int64(i)}}}}, extra...)
		sm.Metrics = append(sm.Metrics, &metrics.Metric{Name: name, Data: &metrics.Metric_Gauge{Gauge: &metrics.Gauge{
			DataPoints: []*metrics.NumberDataPoint{{TimeUnixNano: uint64(ts.UnixNano()), Attributes: attrs,
				Value: &metrics.NumberDataPoint_AsDouble{AsDouble: float64(i) + rand.Float64()}}}}}})
	}
	return &colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metrics.ResourceMetrics{{
		Resource:     &resource.Resource{Attributes: []*common.KeyValue{{Key: "service.name", Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: "fault"}}}}},
		ScopeMetrics: []*metrics.ScopeMetrics{sm},
	}}}
}

func strAttr(k, v string) *common.KeyValue {
	return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
}

// processed turns req into a processed record, as the worker does.
func processed(t testing.TB, req *colmetrics.ExportMetricsServiceRequest, topic string) *stream.Record {
	t.Helper()
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	b := schemas.NewBuilder(otlpwire.Metrics, nil)
	defer b.Release()
	n, err := b.Append(body)
	if err != nil {
		t.Fatal(err)
	}
	batch := b.Build()
	defer batch.Release()
	var buf bytes.Buffer
	if err := schemas.WriteBatch(&buf, batch); err != nil {
		t.Fatal(err)
	}
	return &stream.Record{Topic: topic, Partition: 0, Value: buf.Bytes(), Headers: []stream.Header{
		{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeArrow)},
		{Key: stream.HeaderSignal, Value: []byte("metrics")},
		{Key: stream.HeaderItems, Value: strconv.AppendInt(nil, int64(n), 10)},
	}}
}

// openBus opens the bus of the config at path in this process (its log
// and metrics discarded), as a test does to write a backlog for the
// sluice process it starts next.
func openBus(t *testing.T, path string) (*config.Config, stream.Bus) {
	t.Helper()
	conf, err := app.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	bus, err := app.OpenBus(context.Background(), conf, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return conf, bus
}

// promNumber is the single value of q now (0 for an empty result).
func promNumber(t *testing.T, base, q string) float64 {
	t.Helper()
	res := backendtest.Query(t, base, q, time.Time{})
	if len(res) == 0 {
		return 0
	}
	return res[0].Value
}

// role is a sluice process started by sluiceRole.
type role struct {
	*exec.Cmd
	exited chan struct{}
}

// Wait waits until the process has exited (the process is waited for
// once, by sluiceRole).
func (r *role) Wait() { <-r.exited }

// status is a size field of the process's /proc status (VmRSS, VmHWM) in
// bytes; 0 once the process is gone.
func (r *role) status(field string) int64 { return testproc.StatusBytes(r.Process.Pid, field) }

// sluiceRole runs `sluice <args>` in a process of its own until the test
// ends, waiting until its admin server at admin is ready.
func sluiceRole(t *testing.T, args, admin string) (*role, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SLUICE_TEST_MAIN="+args)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("sluice %s output:\n%s", args, logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("sluice %s exited before it was ready: %v\n%s", args, cmd.ProcessState, logs.String())
		default:
		}
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return &role{cmd, exited}, &logs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice not ready: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricSum is the sum of the values of the samples of metric name on the
// admin server's /metrics (-1 when it cannot be read).
func metricSum(admin, name string) float64 {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var total float64
	for line := range strings.Lines(string(body)) {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			total += v
		}
	}
	return total
}

// sluice run (ingest → worker → prometheus_remote_write) killed with
// SIGKILL while clients send metrics: after a restart on the same data
// directory, every data point that got a success answer is in Prometheus.
// Each request is 10 series of its own (label req), so a point delivered
// twice is the same sample.
func TestKilledSinkDeliversToPrometheus(t *testing.T) {
	be := backendtest.Prometheus(t)
	dir := t.TempDir()
	httpAddr, admin := testproc.FreeAddr(t), testproc.FreeAddr(t)
	cfg := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `
bus:
  kind: embedded
  data_dir: %q
  partitions: 3
ingest:
  grpc_listen: ""
  http_listen: %s
admin:
  listen: %s
rules:
  dir: %q
sinks:
  - name: prom
    type: prometheus_remote_write
    signals: [metrics]
    url: %s
log:
  level: warn
`, filepath.Join(dir, "data"), httpAddr, admin, filepath.Join(dir, "no-rules"), be.WriteURL), 0o644)

	const perRequest = 10
	acked := map[int]bool{}
	send := (&sender{url: "http://" + httpAddr + "/v1/metrics", acked: acked, body: func(seq int) []byte {
		body, _ := proto.Marshal(gauges("fault_kill", perRequest, time.Now(), strAttr("req", strconv.Itoa(seq))))
		return body
	}}).send

	p, _ := sluiceRole(t, "run -c "+cfg, admin)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		p.Process.Signal(syscall.SIGKILL)
	}()
	send(2 * time.Second) // the kill comes while points are being delivered
	p.Wait()
	before := len(acked)
	inBefore := promNumber(t, be.URL, `count(count by (req) (fault_kill))`)

	sluiceRole(t, "run -c "+cfg, admin)
	send(500 * time.Millisecond)
	if len(acked) == before || before == 0 {
		t.Fatalf("acknowledged %d requests before the kill and %d after", before, len(acked)-before)
	}

	deadline := time.Now().Add(60 * time.Second)
	for {
		complete := map[string]bool{}
		for _, r := range backendtest.Query(t, be.URL, `count by (req) (fault_kill) == `+strconv.Itoa(perRequest), time.Time{}) {
			complete[r.Metric["req"]] = true
		}
		var missing []int
		for s := range acked {
			if !complete[strconv.Itoa(s)] {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			t.Logf("%d requests (%d points) acknowledged, %d before the kill (of which %v in Prometheus at the kill); all in Prometheus",
				len(acked), len(acked)*perRequest, before, inBefore)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged requests missing from Prometheus, e.g. %v", len(missing), len(acked), missing[:min(5, len(missing))])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// backlogTest: records × series data points (one point per series per
// record, the records one second apart, ending 5 minutes ago) waiting on
// an embedded bus before `sluice sink` starts; the sink drains them into
// Prometheus. Nothing is lost and the sink process' peak RSS stays under
// maxRSS.
func backlogTest(t *testing.T, records, series int) {
	const maxRSS = 256 << 20
	be := backendtest.Prometheus(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sluice.yaml")
	// The admin port is picked again right before the sink starts: writing
	// the backlog takes seconds, in which another process may take a port
	// picked now.
	writeConfig := func(admin string) {
		os.WriteFile(cfg, fmt.Appendf(nil, `
bus:
  kind: embedded
  data_dir: %q
  partitions: 1
admin:
  listen: %s
sinks:
  - name: prom
    type: prometheus_remote_write
    signals: [metrics]
    url: %s
log:
  level: warn
`, filepath.Join(dir, "data"), admin, be.WriteURL), 0o644)
	}
	writeConfig(testproc.FreeAddr(t))

	// The backlog, written by this process into the bus's data directory.
	start := time.Now()
	conf, bus := openBus(t, cfg)
	ctx := context.Background()
	topic := stream.Topics{Prefix: conf.Bus.TopicPrefix}.Processed(otlpwire.Metrics)
	first := time.Now().Add(-5*time.Minute - time.Duration(records)*time.Second).Truncate(time.Second)
	var bytesOut int
	var batch []*stream.Record
	for k := range records {
		rec := processed(t, gauges("fault_backlog", series, first.Add(time.Duration(k)*time.Second)), topic)
		bytesOut += len(rec.Value)
		batch = append(batch, rec)
		if len(batch) == 50 || k == records-1 {
			if err := bus.Produce(ctx, batch...); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	points := records * series
	t.Logf("backlog: %d records, %d points, %.1f MB of Arrow, written in %s", records, points, float64(bytesOut)/1e6, time.Since(start).Round(time.Millisecond))

	// The sink drains it, its RSS read every 100ms.
	admin := testproc.FreeAddr(t)
	writeConfig(admin)
	start = time.Now()
	p, logs := sluiceRole(t, "sink -c "+cfg, admin)
	var peak int64
	deadline := time.Now().Add(time.Duration(points/10000+60) * time.Second)
	for metricSum(admin, "sluice_sink_samples_sent_total") < float64(points) {
		peak = max(peak, p.status("VmRSS"))
		if time.Now().After(deadline) {
			t.Fatalf("sent %v of %d samples in %s\n%s", metricSum(admin, "sluice_sink_samples_sent_total"), points, time.Since(start), logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	drain := time.Since(start)
	hwm := p.status("VmHWM")
	peak = max(peak, p.status("VmRSS"))

	got := promNumber(t, be.URL, `sum(count_over_time(fault_backlog[2h]))`)
	nseries := promNumber(t, be.URL, `count(last_over_time(fault_backlog[2h]))`)
	t.Logf("drained %d points in %s (%.0f points/s, sink start included); Prometheus has %v samples in %v series; sink RSS peak %.1f MB (VmHWM %.1f MB)",
		points, drain.Round(time.Millisecond), float64(points)/drain.Seconds(), got, nseries, float64(peak)/(1<<20), float64(hwm)/(1<<20))
	if got != float64(points) || nseries != float64(series) {
		t.Errorf("Prometheus has %v samples in %v series, want %d in %d", got, nseries, points, series)
	}
	if n := metricSum(admin, "sluice_sink_rejected_total"); n > 0 {
		t.Errorf("%v records rejected", n)
	}
	if hwm > maxRSS || peak > maxRSS {
		t.Errorf("sink peak RSS %d MB (VmHWM %d MB), want < %d MB", peak>>20, hwm>>20, maxRSS>>20)
	}
}

// 300,000 points (300 records × 1000 series), also with -short.
func TestSinkDrainsBacklogInBoundedMemory(t *testing.T) {
	backlogTest(t, 300, 1000)
}

// 3,000,000 points (3000 records × 1000 series), about 20s on 2 cores;
// not with -short.
func TestSinkDrainsLargeBacklogInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 3M points take about 20s")
	}
	backlogTest(t, 3000, 1000)
}
