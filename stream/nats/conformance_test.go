package nats

import (
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/bustest"
)

// conformanceAckWait is short so that the suite's redeliveries come soon.
const conformanceAckWait = time.Second

// conformanceCaps are the ways the NATS bus differs (see the package doc).
var conformanceCaps = bustest.Caps{
	Durable:          true,
	RedeliveryDelay:  conformanceAckWait,
	AckEachRecord:    true,
	TextHeaders:      true,
	SortedHeaders:    true,
	StartAtStoreTime: true,
	// The members of a group pull from one JetStream consumer.
	NoPartitionOwnership: true,
}

// The embedded server: a reopened bus restarts the server on the same
// data directory.
func TestConformanceEmbedded(t *testing.T) {
	bustest.Run(t, bustest.Harness{
		Start: func(t *testing.T) bustest.Open {
			dir := t.TempDir()
			return func() stream.Bus { return openEmbedded(t, dir, Config{AckWait: conformanceAckWait}) }
		},
		Caps: conformanceCaps,
	})
}

// A nats-server of its own on 127.0.0.1, reached over TCP: a reopened bus
// is a new connection to the same server.
func TestConformanceRemote(t *testing.T) {
	bustest.Run(t, bustest.Harness{
		Start: func(t *testing.T) bustest.Open {
			srv := runServer(t, t.TempDir(), -1)
			return func() stream.Bus {
				b, err := New(Config{URL: srv.ClientURL(), Name: t.Name(), AckWait: conformanceAckWait, Logger: testLogger(t)})
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
		},
		Caps: conformanceCaps,
	})
}
