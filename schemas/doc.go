// Package schemas is the Arrow form of OpenTelemetry data in sluice: the
// schemas of the three signals and lossless conversion between OTLP protobuf
// requests and Arrow record batches. README.md documents the layout.
//
// # Data flow
//
// A worker reads raw OTLP request bytes from the bus and calls
// Builder.Append for each, which decodes the protobuf wire format straight
// into Arrow builders (no generated structs); Builder.Build returns a Batch.
// Rules read and rewrite the Batch; WriteBatch writes it as the
// processed-topic value, a batch record (sluice's column codec in one zstd
// frame, not Arrow IPC: README.md says why), ReadBatch reads it back, and
// ToOTLP turns a Batch back into one Export*ServiceRequest for sinks.
//
// # Ownership
//
// A Batch holds one reference to each of its records. Whoever holds the
// Batch releases it (Batch.Release) exactly once. Arrow arrays are immutable:
// a rule that changes a column builds a new array and a new record, releases
// the old record and stores the new one in the Batch. Builder, Batch and
// ToOTLP are not safe for concurrent use on the same value; distinct values
// may be used from different goroutines. ToOTLP only reads the Batch and
// appends to the caller's dst.
package schemas
