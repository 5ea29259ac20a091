package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// ServerConfig says where the OTLP servers listen.
type ServerConfig struct {
	// GRPCListen and HTTPListen are host:port addresses; an empty one
	// disables that protocol. Port 0 picks a free port (see GRPCAddr and
	// HTTPAddr).
	GRPCListen string
	HTTPListen string
	// TLS, when set, serves both protocols over TLS (see LoadTLS).
	TLS *tls.Config
	// Logger defaults to the ingester's.
	Logger *slog.Logger
	// GRPCOptions are added to the gRPC server's (interceptors...), after
	// those of GRPC.
	GRPCOptions []grpc.ServerOption
	// GRPC bounds what one gRPC client may hold; HTTP, how long an HTTP
	// client may take. Zero fields mean their defaults.
	GRPC GRPCLimits
	HTTP HTTPTimeouts
}

// GRPCLimits bound the streams and connections of gRPC clients.
type GRPCLimits struct {
	// MaxConcurrentStreams is the number of calls one connection may have
	// open at once; further calls wait for one to end. Default 100.
	MaxConcurrentStreams uint32
	// KeepaliveMinTime is the shortest interval at which a client may send
	// keepalive pings; a client pinging more often is disconnected
	// (GOAWAY "too_many_pings"). Pings without calls in flight are
	// allowed. Default 10s.
	KeepaliveMinTime time.Duration
	// MaxConnectionIdle closes a connection without calls for this long
	// (with GOAWAY: clients reconnect when they next send). Default 5m.
	MaxConnectionIdle time.Duration
	// MaxConnectionAge, when positive, closes every connection after this
	// long (clients reconnect, which spreads them over the replicas behind
	// a load balancer), letting its calls finish for MaxConnectionAgeGrace
	// (default 30s). Default 0: no limit.
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration
}

// HTTPTimeouts bound the time HTTP clients may take, so that slow or idle
// connections end and leave their resources to others.
type HTTPTimeouts struct {
	// ReadHeaderTimeout bounds reading a request's headers. Default 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included. Default 1m.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its response: reading the body, the bus acknowledgement, writing
	// the answer. Default 2m.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection without requests for this
	// long. Default 2m.
	IdleTimeout time.Duration
}

// Defaults of GRPCLimits and HTTPTimeouts.
const (
	DefaultMaxConcurrentStreams  = 100
	DefaultKeepaliveMinTime      = 10 * time.Second
	DefaultMaxConnectionIdle     = 5 * time.Minute
	DefaultMaxConnectionAgeGrace = 30 * time.Second
	DefaultReadHeaderTimeout     = 10 * time.Second
	DefaultReadTimeout           = time.Minute
	DefaultWriteTimeout          = 2 * time.Minute
	DefaultIdleTimeout           = 2 * time.Minute
)

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// options are the gRPC server options of l, defaults applied.
func (l GRPCLimits) options() []grpc.ServerOption {
	kp := keepalive.ServerParameters{MaxConnectionIdle: orDefault(l.MaxConnectionIdle, DefaultMaxConnectionIdle)}
	if l.MaxConnectionAge > 0 {
		kp.MaxConnectionAge = l.MaxConnectionAge
		kp.MaxConnectionAgeGrace = orDefault(l.MaxConnectionAgeGrace, DefaultMaxConnectionAgeGrace)
	}
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(orDefault(l.MaxConcurrentStreams, DefaultMaxConcurrentStreams)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: orDefault(l.KeepaliveMinTime, DefaultKeepaliveMinTime), PermitWithoutStream: true}),
		grpc.KeepaliveParams(kp),
	}
}

// Server runs the OTLP/gRPC and OTLP/HTTP servers of one Ingester.
type Server struct {
	ing  *Ingester
	cfg  ServerConfig
	log  *slog.Logger
	grpc *grpc.Server
	http *http.Server

	grpcLn, httpLn net.Listener
	wg             sync.WaitGroup
	mu             sync.Mutex
	serveErr       error
}

// NewServer prepares the servers; Start listens.
func NewServer(ing *Ingester, cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = ing.log
	}
	return &Server{ing: ing, cfg: cfg, log: cfg.Logger}
}

// Start listens on the configured addresses and serves in the background.
// On error nothing is left listening.
func (s *Server) Start() error {
	if s.cfg.GRPCListen == "" && s.cfg.HTTPListen == "" {
		return errors.New("ingest server: neither a gRPC nor an HTTP address")
	}
	var err error
	if s.cfg.GRPCListen != "" {
		if s.grpcLn, err = net.Listen("tcp", s.cfg.GRPCListen); err != nil {
			return fmt.Errorf("ingest: OTLP/gRPC listen: %w", err)
		}
	}
	if s.cfg.HTTPListen != "" {
		if s.httpLn, err = net.Listen("tcp", s.cfg.HTTPListen); err != nil {
			if s.grpcLn != nil {
				s.grpcLn.Close()
			}
			return fmt.Errorf("ingest: OTLP/HTTP listen: %w", err)
		}
	}

	if s.grpcLn != nil {
		opts := append(append(s.ing.GRPCServerOptions(), s.cfg.GRPC.options()...), s.cfg.GRPCOptions...)
		if s.cfg.TLS != nil {
			opts = append(opts, grpc.Creds(credentials.NewTLS(s.cfg.TLS)))
		}
		s.grpc = grpc.NewServer(opts...)
		s.ing.RegisterGRPC(s.grpc)
		s.wg.Go(func() {
			if err := s.grpc.Serve(s.grpcLn); err != nil {
				s.setErr(fmt.Errorf("OTLP/gRPC: %w", err))
			}
		})
		s.log.Info("OTLP/gRPC listening", "addr", s.grpcLn.Addr().String(), "tls", s.cfg.TLS != nil)
	}
	if s.httpLn != nil {
		var protos http.Protocols
		protos.SetHTTP1(true)
		protos.SetHTTP2(true)
		protos.SetUnencryptedHTTP2(s.cfg.TLS == nil) // h2c with prior knowledge
		ht := s.cfg.HTTP
		s.http = &http.Server{
			Handler:           s.ing.HTTPHandler(),
			ReadHeaderTimeout: orDefault(ht.ReadHeaderTimeout, DefaultReadHeaderTimeout),
			ReadTimeout:       orDefault(ht.ReadTimeout, DefaultReadTimeout),
			WriteTimeout:      orDefault(ht.WriteTimeout, DefaultWriteTimeout),
			IdleTimeout:       orDefault(ht.IdleTimeout, DefaultIdleTimeout),
			MaxHeaderBytes:    64 << 10,
			Protocols:         &protos,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}
		ln := s.httpLn
		if s.cfg.TLS != nil {
			s.http.TLSConfig = s.cfg.TLS.Clone()
		}
		s.wg.Go(func() {
			var err error
			if s.cfg.TLS != nil {
				err = s.http.ServeTLS(ln, "", "")
			} else {
				err = s.http.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.setErr(fmt.Errorf("OTLP/HTTP: %w", err))
			}
		})
		s.log.Info("OTLP/HTTP listening", "addr", s.httpLn.Addr().String(), "tls", s.cfg.TLS != nil)
	}
	return nil
}

func (s *Server) setErr(err error) {
	s.log.Error("server stopped", "err", err)
	s.mu.Lock()
	s.serveErr = errors.Join(s.serveErr, err)
	s.mu.Unlock()
}

// GRPCAddr is the address the gRPC server listens on, "" if disabled.
func (s *Server) GRPCAddr() string {
	if s.grpcLn == nil {
		return ""
	}
	return s.grpcLn.Addr().String()
}

// HTTPAddr is the address the HTTP server listens on, "" if disabled.
func (s *Server) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// Shutdown stops accepting connections and waits for the requests in flight
// to be answered - each after its bus acknowledgement - or for ctx to end,
// when it closes what is left. It returns ctx's error in that case, and any
// error a server stopped with.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	var wg sync.WaitGroup
	var grpcForced bool
	if s.grpc != nil {
		wg.Go(func() {
			done := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				grpcForced = true
				s.grpc.Stop()
				<-done
			}
		})
	}
	var httpErr error
	if s.http != nil {
		wg.Go(func() {
			if httpErr = s.http.Shutdown(ctx); httpErr != nil {
				s.http.Close()
			}
		})
	}
	wg.Wait()
	s.wg.Wait()
	if httpErr != nil {
		errs = append(errs, fmt.Errorf("OTLP/HTTP shutdown: %w", httpErr))
	}
	if grpcForced {
		errs = append(errs, fmt.Errorf("OTLP/gRPC shutdown: %w", ctx.Err()))
	}
	s.mu.Lock()
	errs = append(errs, s.serveErr)
	s.mu.Unlock()
	return errors.Join(errs...)
}
