package rules

import "fmt"

// Signal is one of the three OpenTelemetry signals a rule applies to.
type Signal uint8

const (
	Metrics Signal = iota
	Logs
	Traces
	numSignals
)

var signalNames = [numSignals]string{"metrics", "logs", "traces"}

func (s Signal) String() string {
	if s < numSignals {
		return signalNames[s]
	}
	return fmt.Sprintf("Signal(%d)", uint8(s))
}

// ParseSignal returns the signal called name ("metrics", "logs" or "traces").
func ParseSignal(name string) (Signal, bool) {
	for i, n := range signalNames {
		if n == name {
			return Signal(i), true
		}
	}
	return 0, false
}
