package kafkatest

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestNamesAreUniqueAndValid(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		n := Topic(t, "sluice")
		if seen[n] {
			t.Fatalf("%q returned twice", n)
		}
		seen[n] = true
		if invalid.MatchString(n) || len(n) > 249 {
			t.Fatalf("%q is not a valid Kafka topic name", n)
		}
	}
	t.Run("sub/test with spaces", func(t *testing.T) {
		if n := Group(t, "g"); !strings.HasPrefix(n, "g.TestNamesAreUniqueAndValid_sub_test_with_spaces.") {
			t.Errorf("Group = %q", n)
		}
	})
}

func TestSharedBroker(t *testing.T) {
	addrs := Brokers(t)
	if len(addrs) == 0 {
		t.Fatal("no addresses")
	}
	if again := Brokers(t); strings.Join(again, ",") != strings.Join(addrs, ",") {
		t.Errorf("second call: %v, first %v", again, addrs)
	}
	dial(t, addrs[0])
}

func TestStartStopRestart(t *testing.T) {
	start := time.Now()
	b := Start(t)
	t.Logf("started in %s", time.Since(start))
	dial(t, b.Addr())

	b.Stop()
	if c, err := net.Dial("tcp", b.Addr()); err == nil {
		c.Close()
		t.Fatal("the stopped broker still answers")
	}
	b.Stop() // twice is harmless

	start = time.Now()
	b.Restart()
	t.Logf("restarted in %s", time.Since(start))
	dial(t, b.Addr())
}

func dial(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
