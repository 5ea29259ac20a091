package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_test_total", Help: "x"})
	reg.MustRegister(c)
	c.Add(3)
	s := New(reg, nil, Options{})
	var busDown atomic.Bool
	s.AddCheck("bus", func(context.Context) error {
		if busDown.Load() {
			return errors.New("bus unavailable")
		}
		return nil
	})
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	base := "http://" + s.Addr()

	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "sluice_test_total 3") {
		t.Errorf("/metrics: %d %q", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz while ready: %d", code)
	}
	if f := s.Failing(context.Background()); len(f) != 0 {
		t.Errorf("Failing while ready: %q", f)
	}
	busDown.Store(true)
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "bus: bus unavailable") {
		t.Errorf("/readyz while the bus is down: %d %q", code, body)
	}
	// The status page's readiness is /readyz's.
	if f := s.Failing(context.Background()); len(f) != 1 || f[0] != "bus: bus unavailable" {
		t.Errorf("Failing while the bus is down: %q, want what /readyz says", f)
	}
}

// TestPprof: the profiler is served only when switched on.
func TestPprof(t *testing.T) {
	for _, on := range []bool{false, true} {
		s := New(prometheus.NewRegistry(), nil, Options{Pprof: on})
		if err := s.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Shutdown(context.Background()) })
		base := "http://" + s.Addr()
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline", "/debug/pprof/symbol"} {
			code, body := get(t, base+path)
			switch {
			case !on && code != http.StatusNotFound:
				t.Errorf("pprof off: %s: %d, want 404", path, code)
			case on && code != http.StatusOK:
				t.Errorf("pprof on: %s: %d, want 200", path, code)
			case on && path == "/debug/pprof/" && !strings.Contains(body, "goroutine"):
				t.Errorf("pprof on: %s: no profile index in %q", path, body)
			}
		}
		if code, _ := get(t, base+"/metrics"); code != 200 {
			t.Errorf("pprof %v: /metrics: %d", on, code)
		}
	}
}

func TestHandle(t *testing.T) {
	s := New(prometheus.NewRegistry(), nil, Options{})
	s.Handle("GET /before", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "mounted before Start") }))
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	s.Handle("GET /api/v1/x", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "x for "+r.URL.Query().Get("tenant"))
	}))
	base := "http://" + s.Addr()
	if code, body := get(t, base+"/before"); code != 200 || body != "mounted before Start" {
		t.Errorf("/before: %d %q", code, body)
	}
	if code, body := get(t, base+"/api/v1/x?tenant=acme"); code != 200 || body != "x for acme" {
		t.Errorf("/api/v1/x: %d %q", code, body)
	}
	resp, err := http.Post(base+"/api/v1/x", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/v1/x: %d", resp.StatusCode)
	}
	if code, _ := get(t, base+"/api/v1/y"); code != 404 {
		t.Errorf("/api/v1/y: %d", code)
	}
	// The built-in endpoints are still there.
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
}
