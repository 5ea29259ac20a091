package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/stream"
)

// gateSinkType is a sink type whose factory waits until its gate (by the
// entry's name) opens: it holds Start at a known point, after the admin
// server and the bus are up and before the worker and the OTLP listeners.
const gateSinkType = "app-test-gate"

var gates sync.Map // sink name → *gate

type gate struct{ entered, open chan struct{} }

func init() {
	sinks.Register(gateSinkType, func(entry *config.Sink, _ sinks.Env) (sinks.Sink, error) {
		if g, ok := gates.Load(entry.Name); ok {
			close(g.(*gate).entered)
			<-g.(*gate).open
		}
		return discardSink{}, nil
	})
}

type discardSink struct{}

func (discardSink) Write(context.Context, []*stream.Record) error { return nil }
func (discardSink) Close() error                                  { return nil }

func readyz(t *testing.T, admin string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadyMeansReady: /readyz is 503 while Start is still bringing the
// roles up (here held, deterministically, in a sink's factory: the bus
// answers, the OTLP listeners are not bound yet), and the moment it says
// 200 an OTLP request over each protocol succeeds; every item sent comes
// out of the file sink.
func TestReadyMeansReady(t *testing.T) {
	dir := t.TempDir()
	adminAddr, grpcAddr, httpAddr := testproc.FreeAddr(t), testproc.FreeAddr(t), testproc.FreeAddr(t)
	name := "gate-" + t.Name()
	g := &gate{entered: make(chan struct{}), open: make(chan struct{})}
	gates.Store(name, g)
	t.Cleanup(func() { gates.Delete(name) })
	cfg, err := config.Parse("ready.yaml", fmt.Appendf(nil, `
bus:
  kind: embedded
  data_dir: %q
  partitions: 2
ingest:
  grpc_listen: %s
  http_listen: %s
admin:
  listen: %s
rules:
  dir: %q
sinks:
  - name: archive
    type: file
    signals: [metrics, logs, traces]
    path: %q
  - name: %s
    type: %s
    signals: [logs]
`, dir, grpcAddr, httpAddr, adminAddr, filepath.Join(dir, "rules"), filepath.Join(dir, "out"), name, gateSinkType))
	if err != nil {
		t.Fatal(err)
	}

	type started struct {
		p   *Process
		err error
	}
	startc := make(chan started, 1)
	go func() {
		p, err := Start(context.Background(), cfg, All, testLogger(t))
		startc <- started{p, err}
	}()
	var res *started
	wait := func() started {
		if res == nil {
			r := <-startc
			res = &r
		}
		return *res
	}
	open := sync.OnceFunc(func() { close(g.open) })
	t.Cleanup(func() {
		open()
		if r := wait(); r.err == nil {
			r.p.Stop()
		}
	})
	select {
	case <-g.entered:
	case r := <-startc:
		res = &r
		t.Fatalf("Start returned before the gated sink was built: %v", r.err)
	case <-time.After(60 * time.Second):
		t.Fatal("the gated sink was never built")
	}
	if code, body := readyz(t, adminAddr); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while starting (no OTLP listener yet): %d %q, want 503", code, body)
	}

	// Open the gate and catch the first 200; send at once.
	open()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _ := readyz(t, adminAddr)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never said 200")
		}
		time.Sleep(time.Millisecond)
	}
	shape := otlptest.Shape{Seed: 1, Resources: 2, Items: 3, Points: 4}
	var sent [3]int
	ok := 0
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := colmetrics.NewMetricsServiceClient(conn).Export(context.Background(), otlptest.Metrics(shape)); err != nil {
		t.Errorf("OTLP/gRPC right after ready: %v", err)
	} else {
		ok++
		sent[otlpwire.Metrics] += shape.ItemCount(otlpwire.Metrics)
	}
	resp, err := http.Post("http://"+httpAddr+"/v1/logs", "application/x-protobuf", bytes.NewReader(otlptest.Request(otlpwire.Logs, shape)))
	if err != nil {
		t.Errorf("OTLP/HTTP right after ready: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("OTLP/HTTP right after ready: %s", resp.Status)
		} else {
			ok++
			sent[otlpwire.Logs] += shape.ItemCount(otlpwire.Logs)
		}
	}
	if ok != 2 {
		t.Fatalf("%d of 2 requests sent right after /readyz said 200 succeeded", ok)
	}
	r := wait()
	if r.err != nil {
		t.Fatal(r.err)
	}
	waitForOutput(t, filepath.Join(dir, "out"), sent)

	// Stopping: not ready any more from the first moment.
	r.p.phase.Store(phaseStopping)
	if code, body := readyz(t, adminAddr); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while stopping: %d %q, want 503", code, body)
	}
}
