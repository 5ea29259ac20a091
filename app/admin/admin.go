// Package admin serves sluice's own endpoints on the admin address:
// Prometheus metrics, liveness, readiness and pprof.
//
//	/metrics        Prometheus text format of the process's registry
//	/healthz        200 while the process serves HTTP at all
//	/readyz         200 only when every readiness check passes (sluice's
//	                process: started and not stopping, the bus answers,
//	                the OTLP listeners serve); 503 with the failing
//	                checks otherwise
//	/debug/pprof/   Go's profiler, only with Options.Pprof (404 otherwise):
//	                it reveals the command line and memory contents and
//	                lets any caller make the process spend CPU on a
//	                profile, so it is off unless asked for
//
// The roles mount their own endpoints with Handle (the worker's
// GET /api/v1/cardinality, the status page of app/status).
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness check; nil means ready.
type Check func(ctx context.Context) error

// Server is the admin HTTP server.
type Server struct {
	srv *http.Server
	mux *http.ServeMux
	ln  net.Listener
	log *slog.Logger

	mu     sync.Mutex
	checks []namedCheck
}

type namedCheck struct {
	name string
	fn   Check
}

// Options are the optional endpoints of the server.
type Options struct {
	// Pprof serves Go's profiler under /debug/pprof/.
	Pprof bool
}

// New builds the server for gatherer's metrics. Listening starts with Start.
func New(gatherer prometheus.Gatherer, log *slog.Logger, opts Options) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	s := &Server{log: log, mux: mux}
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", s.ready)
	if opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Handle mounts h at pattern (http.ServeMux syntax, e.g.
// "GET /api/v1/cardinality"), before or after Start. It panics, as the mux
// does, when pattern is invalid or taken.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// AddCheck adds a readiness check under name.
func (s *Server) AddCheck(name string, fn Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, namedCheck{name, fn})
}

// Failing runs the readiness checks, as /readyz does, and returns the
// failing ones ("name: error"); none means ready.
func (s *Server) Failing(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s.mu.Lock()
	checks := append([]namedCheck(nil), s.checks...)
	s.mu.Unlock()
	var failed []string
	for _, c := range checks {
		if err := c.fn(ctx); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", c.name, err))
		}
	}
	return failed
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if failed := s.Failing(r.Context()); len(failed) > 0 {
		http.Error(w, "not ready\n"+strings.Join(failed, "\n"), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Start listens on addr (":0" picks a port) and serves in the background.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	s.ln = ln
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server stopped", "err", err)
		}
	}()
	return nil
}

// Addr is the address the server listens on, after Start.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops the server, waiting for requests in progress until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
