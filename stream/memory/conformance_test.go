package memory

import (
	"testing"

	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/bustest"
)

func TestConformance(t *testing.T) {
	bustest.Run(t, bustest.Harness{
		Start: func(*testing.T) bustest.Open {
			return func() stream.Bus { return New() }
		},
		// Caps' zero value: it keeps nothing across a restart.
	})
}
