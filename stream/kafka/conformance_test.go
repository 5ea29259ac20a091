package kafka

import (
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/bustest"
)

// The shared test broker (skipped without one): a reopened bus is a new
// set of clients of the same cluster.
func TestConformance(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	bustest.Run(t, bustest.Harness{
		Start: func(t *testing.T) bustest.Open {
			return func() stream.Bus {
				b, err := New(Config{Brokers: brokers, Logger: testLogger(t)})
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
		},
		Caps: bustest.Caps{
			Durable:             true,
			Wait:                30 * time.Second, // a new member joins its group in seconds
			TimestampResolution: time.Millisecond,
		},
	})
}
