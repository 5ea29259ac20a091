// Package kafkatest gives tests a real Apache Kafka broker.
//
// Brokers returns the addresses of a broker that the tests of one binary
// share: the one named by SLUICE_KAFKA_BROKERS (comma-separated host:port,
// as `make test` exports after scripts/kafka/broker.sh has started it), or
// else one started on first use from the jars in SLUICE_KAFKA_LIBS
// (scripts/kafka/fetch.sh puts them in .cache/kafka/libs) and stopped by
// Main. Start runs a private broker for tests that stop and restart it.
// Without either variable, the tests that need a broker are skipped.
//
// A package whose tests use Brokers calls Main from TestMain:
//
//	func TestMain(m *testing.M) { kafkatest.Main(m) }
//
// Tests that share a broker take their topic and group names from Topic and
// Group, which are unique per call, so that they never see each other's
// records (nor those of an earlier run against a long-lived broker).
package kafkatest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Environment variables read by Brokers and Start.
const (
	EnvBrokers = "SLUICE_KAFKA_BROKERS"
	EnvLibs    = "SLUICE_KAFKA_LIBS"
)

const skipMsg = "no Kafka broker: run `make test`, or set " + EnvBrokers + " / " + EnvLibs

// shared is the broker started by Brokers for the whole test binary.
var shared struct {
	once   sync.Once
	broker *Broker
	dir    string
	err    error
}

// Brokers returns the seed addresses of the broker shared by the tests of
// this binary, or skips tb when there is none (see the package doc).
func Brokers(tb testing.TB) []string {
	tb.Helper()
	if env := os.Getenv(EnvBrokers); env != "" {
		var addrs []string
		for a := range strings.SplitSeq(env, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
		return addrs
	}
	libs := os.Getenv(EnvLibs)
	if libs == "" {
		tb.Skip(skipMsg)
	}
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "kafkatest-")
		if shared.err != nil {
			return
		}
		shared.broker, shared.err = startBroker(libs, shared.dir)
	})
	if shared.err != nil {
		tb.Fatalf("kafkatest: shared broker: %v", shared.err)
	}
	return []string{shared.broker.Addr()}
}

// Main runs the tests and then stops the broker that Brokers may have
// started, and exits. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared.broker != nil {
		shared.broker.stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

var (
	seq     atomic.Uint64
	runID   = randomHex(3) // tells this run's names from an earlier run's
	invalid = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)
)

// Topic returns a topic name unique to this call: prefix, the test's name
// and a counter, in the characters Kafka allows.
func Topic(tb testing.TB, prefix string) string { return unique(tb, prefix) }

// Group returns a consumer group name unique to this call, like Topic.
func Group(tb testing.TB, prefix string) string { return unique(tb, prefix) }

func unique(tb testing.TB, prefix string) string {
	name := invalid.ReplaceAllString(tb.Name(), "_")
	if len(name) > 180 {
		name = name[:180]
	}
	return fmt.Sprintf("%s.%s.%s%d", prefix, name, runID, seq.Add(1))
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
