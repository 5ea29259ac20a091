package file

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpjson"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/sinkmetrics"
	"github.com/sluice-dev/sluice/stream"
)

func record(sig otlpwire.Signal, seed int) *stream.Record {
	return &stream.Record{Topic: "p." + sig.String(), Value: otlptest.Request(sig, otlptest.Shape{Resources: 2, Items: 3, Points: 2, Seed: seed}),
		Headers: []stream.Header{{Key: stream.HeaderSignal, Value: []byte(sig.String())}, {Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeOTLPProto)}}}
}

// lines reads a JSONL file and turns every line back into protobuf.
func lines(t *testing.T, sig otlpwire.Signal, name string) [][]byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		pb, err := otlpjson.UnmarshalRequest(sig, sc.Bytes(), nil)
		if err != nil {
			t.Fatalf("%s line %d: %v", name, len(out)+1, err)
		}
		out = append(out, pb)
	}
	return out
}

func TestWritesOneJSONLinePerRecordPerSignal(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{Path: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*stream.Record
	for i := range 4 {
		for _, sig := range otlpwire.Signals {
			recs = append(recs, record(sig, i))
		}
	}
	if err := s.Write(context.Background(), recs[:6]); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), recs[6:]); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, sig := range otlpwire.Signals {
		got := lines(t, sig, filepath.Join(dir, noTenant, sig.String()+".jsonl"))
		if len(got) != 4 {
			t.Fatalf("%s: %d lines, want 4", sig, len(got))
		}
		for i, pb := range got {
			want := record(sig, i).Value
			n, err := otlpwire.Count(sig, pb)
			if shape := (otlptest.Shape{Resources: 2, Items: 3, Points: 2}); err != nil || n != shape.ItemCount(sig) {
				t.Errorf("%s line %d: %d items, %v", sig, i, n, err)
			}
			if !protoEqual(t, sig, pb, want) {
				t.Errorf("%s line %d differs from the record written", sig, i)
			}
		}
	}
}

func protoEqual(t *testing.T, sig otlpwire.Signal, a, b []byte) bool {
	t.Helper()
	ma, mb := otlptest.Metrics(otlptest.Shape{}), otlptest.Metrics(otlptest.Shape{})
	var x, y proto.Message = ma, mb
	switch sig {
	case otlpwire.Logs:
		x, y = otlptest.Logs(otlptest.Shape{}), otlptest.Logs(otlptest.Shape{})
	case otlpwire.Traces:
		x, y = otlptest.Traces(otlptest.Shape{}), otlptest.Traces(otlptest.Shape{})
	}
	if err := proto.Unmarshal(a, x); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(b, y); err != nil {
		t.Fatal(err)
	}
	return proto.Equal(x, y)
}

func TestRotatesBySizeAndKeepsMaxFiles(t *testing.T) {
	dir := t.TempDir()
	s, _ := New(Config{Path: dir, MaxFileBytes: 1, MaxFiles: 2}, nil)
	tick := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { tick = tick.Add(time.Second); return tick }
	for i := range 5 {
		if err := s.Write(context.Background(), []*stream.Record{record(otlpwire.Logs, i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	rotated, _ := filepath.Glob(filepath.Join(dir, noTenant, "logs-*.jsonl"))
	if len(rotated) != 2 {
		t.Fatalf("rotated files = %v, want the 2 newest", rotated)
	}
	// The newest rotated file holds the last record written.
	got := lines(t, otlpwire.Logs, rotated[1])
	if len(got) != 1 || !protoEqual(t, otlpwire.Logs, got[0], record(otlpwire.Logs, 4).Value) {
		t.Errorf("newest rotated file does not hold the last record")
	}
}

// Processed records are Arrow: the sink writes them back as OTLP.
func TestWritesArrowRecordsAsOTLP(t *testing.T) {
	dir := t.TempDir()
	s, _ := New(Config{Path: dir}, nil)
	for _, sig := range otlpwire.Signals {
		in := record(sig, 7)
		b := schemas.NewBuilder(sig, nil)
		if _, err := b.Append(in.Value); err != nil {
			t.Fatal(err)
		}
		batch := b.Build()
		var ipc bytes.Buffer
		if err := schemas.WriteBatch(&ipc, batch); err != nil {
			t.Fatal(err)
		}
		batch.Release()
		b.Release()
		arrowRec := &stream.Record{Topic: "p", Value: ipc.Bytes(), Headers: []stream.Header{
			{Key: stream.HeaderSignal, Value: []byte(sig.String())}, {Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeArrow)}}}
		if err := s.Write(context.Background(), []*stream.Record{arrowRec}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		got := lines(t, sig, filepath.Join(dir, noTenant, sig.String()+".jsonl"))
		if len(got) != 1 || !protoEqual(t, sig, got[0], in.Value) {
			t.Errorf("%s: the line is not the request that went into Arrow", sig)
		}
	}
}

func TestCutsPartialLineLeftByCrash(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, noTenant, "traces.jsonl")
	os.Mkdir(filepath.Dir(name), 0o750)
	good, _ := otlpjson.MarshalRequest(otlpwire.Traces, record(otlpwire.Traces, 0).Value, nil)
	os.WriteFile(name, append(append(good, '\n'), `{"resourceSpans":[{"reso`...), 0o644)
	s, _ := New(Config{Path: dir}, nil)
	if err := s.Write(context.Background(), []*stream.Record{record(otlpwire.Traces, 1)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if got := lines(t, otlpwire.Traces, name); len(got) != 2 {
		t.Fatalf("%d lines, want the old complete line and the new one", len(got))
	}
}

func TestRejectsRecordsItCannotWrite(t *testing.T) {
	s, _ := New(Config{Path: t.TempDir()}, nil)
	defer s.Close()
	noSignal := &stream.Record{Topic: "x", Value: []byte{}}
	if err := s.Write(context.Background(), []*stream.Record{noSignal}); err == nil || !strings.Contains(err.Error(), "sluice-signal") {
		t.Errorf("record without signal header: %v", err)
	}
	bad := record(otlpwire.Metrics, 0)
	bad.Value = []byte{0xff, 0xff}
	if err := s.Write(context.Background(), []*stream.Record{bad}); err == nil {
		t.Error("malformed protobuf accepted")
	}
	arrow := record(otlpwire.Metrics, 0)
	arrow.Headers[1].Value = []byte("text/plain")
	if err := s.Write(context.Background(), []*stream.Record{arrow}); err == nil || !strings.Contains(err.Error(), "content type") {
		t.Errorf("foreign content type: %v", err)
	}
}

func TestConfigEntry(t *testing.T) {
	cfg, err := config.Parse("c.yaml", []byte("sinks:\n  - name: a\n    type: file\n    signals: [logs]\n    path: "+strconv.Quote(t.TempDir())+"\n    max_file_bytes: 1MiB\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sinks.Build(cfg, &cfg.Sinks[0], sinks.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if fs := s.(*Sink); fs.cfg.MaxFileBytes != 1<<20 {
		t.Errorf("max_file_bytes = %d", fs.cfg.MaxFileBytes)
	}
	s.Close()

	for yaml, want := range map[string]string{
		"sinks:\n  - name: a\n    type: file\n    signals: [logs]\n":                             "c.yaml:2:5: sinks[0].path: the file sink needs a path",
		"sinks:\n  - name: a\n    type: file\n    signals: [logs]\n    path: x\n    rotate: 1\n": `c.yaml:6:5: sinks[0].rotate: unknown key "rotate"`,
		"sinks:\n  - name: a\n    type: fiel\n    signals: [logs]\n":                             `c.yaml:3:11: sinks[0].type: unknown sink type "fiel"`,
	} {
		cfg, err := config.Parse("c.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if err := sinks.Check(cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}

// The items of the records written count in
// sluice_sink_items_sent_total{sink}, as every sink's do; a record the
// sink refuses (an invalid tenant: dead-lettered) does not.
func TestCountsItemsSent(t *testing.T) {
	cfg, err := config.Parse("c.yaml", []byte("sinks:\n  - name: archive\n    type: file\n    signals: [logs]\n    path: "+strconv.Quote(t.TempDir())+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := sinks.Build(cfg, &cfg.Sinks[0], sinks.Env{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	items := func(r *stream.Record, n string) *stream.Record {
		r.Headers = append(r.Headers, stream.Header{Key: stream.HeaderItems, Value: []byte(n)})
		return r
	}
	refused := items(record(otlpwire.Logs, 2), "5")
	refused.Headers = append(refused.Headers, stream.Header{Key: stream.HeaderTenant, Value: []byte("../x")})
	err = s.Write(context.Background(), []*stream.Record{items(record(otlpwire.Logs, 0), "12"), items(record(otlpwire.Logs, 1), "12"), refused})
	var rej *sinks.RejectedError
	if !errors.As(err, &rej) || len(rej.Records) != 1 {
		t.Fatalf("Write: %v, want the record with an invalid tenant refused", err)
	}
	if got := testutil.ToFloat64(sinkmetrics.New(reg).ItemsSent.WithLabelValues("archive")); got != 24 {
		t.Errorf("sluice_sink_items_sent_total = %v, want 24", got)
	}
}
