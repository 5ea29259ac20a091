// Package sluice is a telemetry pipeline for OpenTelemetry data that has
// outgrown one agent. This package holds no code: it is the project's
// root, and its test checks the layering of the parts below (README.md,
// "Architecture"):
//
//	cmd/sluice, bench        the binary and the benchmarks; nothing imports them
//	app                      wires the roles from the config (cmd and bench only)
//	ingest  stream  sinks    the data path: OTLP in, the bus and the workers, delivery
//	rules   schemas          pure: batches in, batches out
//	internal/...             ground floor: internal/otlpwire (OTLP on the wire,
//	                         the one Signal type), otlpjson, arrowpool, config,
//	                         test helpers; imports nothing above it
//
// The rules each part keeps are in layers_test.go, which fails when one is
// broken.
package sluice
