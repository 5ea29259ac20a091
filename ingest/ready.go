package ingest

import (
	"errors"
	"fmt"
)

// errNotListening: Ready was asked before Start bound the listener.
var errNotListening = errors.New("not listening")

// Ready reports whether the server takes requests: nil when every
// configured listener (gRPC, HTTP) is bound, its server has been handed
// to it, and none has stopped with an error. A client connecting then is
// accepted (at worst it waits in the listen backlog while the accept loop
// starts), never refused. Call it after Start returned; the caller stops
// reporting ready before Shutdown (readiness is the caller's to withdraw
// while in-flight requests drain).
func (s *Server) Ready() error {
	var errs []error
	if s.cfg.GRPCListen != "" && (s.grpcLn == nil || s.grpc == nil) {
		errs = append(errs, fmt.Errorf("OTLP/gRPC on %s: %w", s.cfg.GRPCListen, errNotListening))
	}
	if s.cfg.HTTPListen != "" && (s.httpLn == nil || s.http == nil) {
		errs = append(errs, fmt.Errorf("OTLP/HTTP on %s: %w", s.cfg.HTTPListen, errNotListening))
	}
	s.mu.Lock()
	errs = append(errs, s.serveErr)
	s.mu.Unlock()
	return errors.Join(errs...)
}
