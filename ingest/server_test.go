package ingest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// TestShutdownDrains: a request whose Produce is blocked when Shutdown is
// called still gets its success answer once the bus acknowledges, while new
// connections are refused.
func TestShutdownDrains(t *testing.T) {
	for _, protocol := range []string{"http", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			mem := newBus(t, 1)
			gate := newGateBus(mem)
			s := NewServer(newIngester(t, Config{}, gate), ServerConfig{GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Logger: quietLogger()})
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			addr := s.HTTPAddr()
			if protocol == "grpc" {
				addr = s.GRPCAddr()
			}
			cc := dial(t, s.GRPCAddr())
			answer := make(chan error, 1)
			go func() {
				if protocol == "grpc" {
					_, _, err := exportGRPC(context.Background(), cc, otlpwire.Traces)
					answer <- err
					return
				}
				resp := httpReq{path: PathTraces, contentType: contentTypeProto, body: samples(t)[otlpwire.Traces]}.do(t, addr)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					answer <- errors.New(resp.Status + ": " + string(body))
					return
				}
				answer <- nil
			}()
			<-gate.entered

			shut := make(chan error, 1)
			go func() { shut <- s.Shutdown(context.Background()) }()
			// The listener closes first: wait for a refused connection.
			for {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					break
				}
				c.Close()
				time.Sleep(time.Millisecond)
			}
			select {
			case err := <-shut:
				t.Fatalf("Shutdown returned (%v) with a request in flight", err)
			case err := <-answer:
				t.Fatalf("request answered (%v) before the bus acknowledged", err)
			default:
			}
			gate.open()
			if err := <-answer; err != nil {
				t.Errorf("in-flight request: %v", err)
			}
			if err := <-shut; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if got := busItems(t, mem, otlpwire.Traces, ""); got != sampleItems[otlpwire.Traces] {
				t.Errorf("%d items on the bus", got)
			}
		})
	}
}

func TestShutdownDeadline(t *testing.T) {
	gate := newGateBus(newBus(t, 1))
	defer gate.open()
	s := NewServer(newIngester(t, Config{}, gate), ServerConfig{HTTPListen: "127.0.0.1:0", GRPCListen: "127.0.0.1:0", Logger: quietLogger()})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		resp, err := http.Post("http://"+s.HTTPAddr()+PathLogs, contentTypeProto, strings.NewReader(string(samples(t)[otlpwire.Logs])))
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-gate.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown with an expired context: %v", err)
	}
}

func TestServerConfig(t *testing.T) {
	ing := newIngester(t, Config{}, newBus(t, 1))
	if err := NewServer(ing, ServerConfig{}).Start(); err == nil {
		t.Error("Start without addresses succeeded")
	}
	s := NewServer(ing, ServerConfig{HTTPListen: "127.0.0.1:0", Logger: quietLogger()})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if s.GRPCAddr() != "" || s.HTTPAddr() == "" {
		t.Errorf("addresses %q %q", s.GRPCAddr(), s.HTTPAddr())
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestConfigValidation(t *testing.T) {
	bus := newBus(t, 1)
	for _, cfg := range []Config{
		{MaxRecordBytes: 100},
		{DefaultTenant: "two words"},
		{Key: map[otlpwire.Signal]otlpwire.KeyMode{otlpwire.Metrics: otlpwire.KeyTraceID}},
	} {
		if _, err := New(cfg, bus); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("New with a nil bus succeeded")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	bus := newBus(t, 2)
	srv := startServer(t, newIngester(t, Config{Registerer: reg}, bus))
	pb := samples(t)[otlpwire.Metrics]
	for _, body := range [][]byte{pb, {0xff}} {
		resp := httpReq{path: PathMetrics, contentType: contentTypeProto, body: body}.do(t, srv.HTTPAddr())
		resp.Body.Close()
	}
	if _, _, err := exportGRPC(context.Background(), dial(t, srv.GRPCAddr()), otlpwire.Logs); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount()) + m.GetGauge().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"sluice_ingest_requests_total,code=200,protocol=http,signal=metrics": 1,
		"sluice_ingest_requests_total,code=400,protocol=http,signal=metrics": 1,
		"sluice_ingest_requests_total,code=OK,protocol=grpc,signal=logs":     1,
		"sluice_ingest_items_total,signal=metrics":                           float64(sampleItems[otlpwire.Metrics]),
		"sluice_ingest_items_total,signal=logs":                              float64(sampleItems[otlpwire.Logs]),
		"sluice_ingest_bytes_total,signal=metrics":                           float64(len(pb) + 1),
		"sluice_ingest_errors_total,reason=bad_request,signal=metrics":       1,
		"sluice_ingest_produce_duration_seconds,signal=metrics":              1,
		"sluice_ingest_inflight_bytes":                                       0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	// A second ingester on the same registry is refused, not silently merged.
	if _, err := New(Config{Topics: testTopics, Registerer: reg}, bus); err == nil {
		t.Error("second registration succeeded")
	}
}

func TestParseKeyMode(t *testing.T) {
	for s, want := range map[string]otlpwire.KeyMode{"": otlpwire.KeyDefault, "resource": otlpwire.KeyResource, "trace_id": otlpwire.KeyTraceID, "none": otlpwire.KeyNone} {
		if got, err := ParseKeyMode(s); err != nil || got != want {
			t.Errorf("ParseKeyMode(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseKeyMode("span"); err == nil {
		t.Error("ParseKeyMode(span) succeeded")
	}
}
