// Package stream is the middle of sluice's data path: the bus that carries
// OTLP requests from the ingesters to the workers and from the workers to the
// sinks, and the worker runtime that moves records between topics.
//
// The bus is deliberately small (see Bus): produce records and wait for the
// broker's acknowledgement; consume as a member of a group and commit a
// record's position only after the caller says the next stage has it; create
// topics. Implementations live in sub-packages: kafka (franz-go), nats
// (JetStream, remote or embedded) and memory (in-process, for tests and
// benchmarks).
//
// Ownership: a Record's Value and Key handed to Produce belong to the bus
// until Produce returns; after that the caller may reuse them. Records
// returned by Poll belong to the caller until it passes them to Commit.
package stream
