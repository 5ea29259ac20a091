package otlpwire

import "fmt"

// Signal is one of the three OpenTelemetry signals.
type Signal uint8

const (
	Metrics Signal = iota
	Logs
	Traces
)

// Signals lists every signal in a fixed order.
var Signals = [...]Signal{Metrics, Logs, Traces}

// Valid reports whether s is one of Signals.
func (s Signal) Valid() bool { return s <= Traces }

func (s Signal) String() string {
	switch s {
	case Metrics:
		return "metrics"
	case Logs:
		return "logs"
	case Traces:
		return "traces"
	}
	return fmt.Sprintf("signal(%d)", uint8(s))
}

// ParseSignal is the inverse of Signal.String.
func ParseSignal(s string) (Signal, error) {
	switch s {
	case "metrics":
		return Metrics, nil
	case "logs":
		return Logs, nil
	case "traces":
		return Traces, nil
	}
	return 0, fmt.Errorf("unknown signal %q (valid: metrics, logs, traces)", s)
}
