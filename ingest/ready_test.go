package ingest

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// Ready is an error until Start has bound every configured listener, nil
// then, and an error again once a server stopped by itself.
func TestReady(t *testing.T) {
	ing := newIngester(t, Config{}, newBus(t, 1))
	s := NewServer(ing, ServerConfig{GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Logger: quietLogger()})
	if err := s.Ready(); !errors.Is(err, errNotListening) {
		t.Fatalf("Ready before Start: %v, want not listening", err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	if err := s.Ready(); err != nil {
		t.Fatalf("Ready after Start: %v", err)
	}
	for _, addr := range []string{s.GRPCAddr(), s.HTTPAddr()} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("ready, but %s refuses: %v", addr, err)
		}
		c.Close()
	}
	// The gRPC server losing its listener stops it with an error: not
	// ready, as soon as its Serve has returned.
	s.grpcLn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for s.Ready() == nil {
		if time.Now().After(deadline) {
			t.Fatal("Ready after the gRPC server stopped by itself: still nil")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
