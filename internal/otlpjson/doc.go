// Package otlpjson converts between OTLP/JSON and the protobuf wire format
// for the Export*ServiceRequest and Export*ServiceResponse messages of the
// three signals.
//
// Data enters as an OTLP/HTTP JSON body, which UnmarshalRequest turns into
// the same protobuf bytes an OTLP/HTTP protobuf or gRPC client would have
// sent, so everything after the ingester sees one format. It leaves through
// MarshalRequest, for sinks that write JSON (one request per line). Neither
// direction builds message structs: both walk the input once against tables
// read from the generated descriptors (schema.go) and append to a buffer the
// caller passes in.
//
// OTLP/JSON is the protobuf JSON mapping with the changes the OTLP
// specification makes (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding):
//
//   - trace_id, span_id and parent_span_id are hex, not base64: written in
//     lowercase, read in either case. An id must be empty or have its full
//     length (16 bytes for a trace, 8 for a span); anything else is an error
//     in both directions, so whatever MarshalRequest writes decodes again.
//   - Enums are written as numbers; names are read too (an unknown name is
//     ignored, as protojson ignores it).
//   - Field names are written in lowerCamelCase; the proto names
//     (snake_case) are read too.
//   - Unknown fields are ignored.
//   - 64-bit integers are written as strings; strings and numbers are read.
//
// Otherwise the decoder accepts what protojson.UnmarshalOptions{DiscardUnknown:
// true} accepts, with the same result, and the encoder writes what
// protojson.MarshalOptions{UseEnumNumbers: true} writes for the message
// proto.Unmarshal reads, less protojson's random spaces, and fails where
// proto.Unmarshal fails. The tests check both against such a protojson
// codec, on fixed cases, random messages and under the fuzzer.
//
// Errors are *Error: the path of the field in JSON names
// (resourceSpans[0].scopeSpans[0].spans[2].traceId) and the place in the
// input. They all mean malformed input, which sending again will not fix.
//
// The functions read their input only during the call and keep no reference
// to it or to dst; on error dst[:len(dst)] is as it was. They are safe for
// concurrent use.
package otlpjson
