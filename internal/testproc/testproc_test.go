package testproc

import (
	"net"
	"os"
	"testing"
)

func TestFreeAddr(t *testing.T) {
	addr := FreeAddr(t)
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("FreeAddr = %q (%v), want 127.0.0.1:port", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	l.Close()
}

func TestStatusBytes(t *testing.T) {
	rss, hwm := StatusBytes(os.Getpid(), "VmRSS"), StatusBytes(os.Getpid(), "VmHWM")
	if rss <= 0 || hwm < rss || rss%1024 != 0 {
		t.Errorf("VmRSS %d, VmHWM %d bytes", rss, hwm)
	}
	if n := StatusBytes(os.Getpid(), "NoSuchField"); n != 0 {
		t.Errorf("a field /proc does not have: %d", n)
	}
	if n := StatusBytes(-1, "VmRSS"); n != 0 {
		t.Errorf("a process that does not exist: %d", n)
	}
}
