//go:build !race

package otlpwire

const raceEnabled = false
