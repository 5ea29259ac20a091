// Package otlpwire is OTLP on the wire, the ground floor of sluice: every
// part that touches OTLP bytes stands on it, and it imports nothing of
// sluice's. It holds the Signal type (which Export*ServiceRequest a body
// is), NewRequest, the one reader of the protobuf encoding, ReadField, with
// the names of the OTLP field numbers (fields.go), which the scanner and
// package schemas' decoders and encoders share, and the scanner and
// splitter below.
//
// The scanner is the ingester's hot path: it scans an OTLP
// Export{Metrics,Logs,Trace}ServiceRequest in the protobuf encoding, checks
// its structure, counts its items and splits it into bus records by
// partition and size, without decoding it. The OTLP and Kafka sinks use the
// same splitter to cut a request that is too large for their destination.
//
// # Data flow
//
// The ingester receives a request body and calls Splitter.Split with the
// topic's partition count and record size limit. Each Chunk is one record
// for the bus: a complete request of the same signal, with the partition to
// produce it to and the number of items it holds (for the sluice-items
// header). Count does the validation and counting alone.
//
// Items are data points for metrics (of every metric type), log records for
// logs and spans for traces. Every accepted item lands in exactly one chunk,
// with its resource and scope (and for metrics its metric) around it;
// an item too large for a record even alone is counted in Result.Rejected,
// never dropped silently.
//
// # What the scanner checks, and what it leaves to the workers
//
// The scanner walks every message from the request down to the items:
// ResourceX, its Resource, ScopeX, its InstrumentationScope, and for metrics
// each Metric and its data message. In each it checks every tag (field
// number 1 to 2^29-1, wire type 0 to 5, no stray end-group), every varint
// (at most 10 bytes), that every length and fixed-size value stays inside
// its message, that the fields it knows have their declared wire type
// (where proto.Unmarshal would quietly keep a mistyped field as unknown),
// that the strings it walks over (schema_url, metric name, description and
// unit, scope name and version) are UTF-8, and that a Metric holds only one
// kind of data message (a oneof: decoders would keep the last and lose the
// other's points). A problem gives a *FormatError naming the message and
// the field, such as
//
//	resource_metrics[3].scope_metrics[0].metrics[12]: truncated length-delimited field 9 (histogram): ...
//
// Items are taken as length-delimited boundaries and are not read, nor are
// attributes (resource, scope and metric metadata attributes are bounded,
// not decoded; resource attributes are hashed as bytes). With KeyTraceID
// each span or log record's top-level fields are read to find its trace_id.
// The content of items - timestamps, values, trace id lengths - is for the
// workers to check when they decode. With Options.Check (the ingester sets
// it) the scanner also checks each item's attributes (and a log record's
// body) against the limits of the workers' decoder, limits.go: UTF-8 of
// keys and strings, AnyValue nesting at most MaxAnyValueDepth, an
// attribute of a key and one value. An item that breaks them is rejected
// (Result.Invalid, with its path and field in RejectReason) and left out
// of the chunks; its valid neighbours are kept. Splitter.Invalid gives the
// rejected items alone, for the workers' dead-letter topic. A request that Split accepts and
// proto.Unmarshal accepts gives chunks that proto.Unmarshal accepts.
//
// Fields the scanner does not know are carried through byte for byte: at
// the item level inside the item, above it as part of the enclosing
// message's header (below), so a newer OTLP version passes unchanged.
//
// # Partitions and splitting
//
// See KeyMode for how partitions are chosen. Chunks of one partition hold
// as few records as next-fit packing in request order gives: a message goes
// whole into a chunk when it fits in a record, and is cut otherwise - a
// resource along its scopes, a scope along its metrics or items, a metric
// along its data points. Each piece of a cut message repeats the message's
// header, that is all of its fields but the cut list, copied raw: resource
// and schema_url, scope and schema_url, name, description, unit, metadata,
// aggregation_temporality, is_monotonic, and unknown fields. With KeyTraceID
// the spans of one scope that go to different partitions are regrouped the
// same way. The request's own fields other than its resources (unknown
// ones, in today's OTLP) go into every chunk. Pieces write the header
// before the children, which may reorder
// fields relative to the body; that does not change the decoded message.
// Messages with no items (empty resources, scopes, metrics) are kept when
// their parent is copied whole and dropped when it is cut.
//
// # Reading fields, and their names
//
// ReadField reads one field: its number, its wire type, where its value is,
// and the value itself when it is a scalar. It checks the framing exactly as
// proto.Unmarshal does; what is wrong comes back as a ReadErr code, which
// the scanner turns into a FormatError and the schemas decoders into
// schemas.ErrMalformed. It is written for the common case, one-byte tags and
// short lengths, and returns offsets rather than slices because the scanner
// indexes the body by offset.
//
// fields.go names every field of the OTLP messages sluice reads or writes,
// <Message><Field> (MetricSum, SpanTraceID, KeyValueKey), each with its
// declaration; a test checks every name and number against the descriptors
// of go.opentelemetry.io/proto/otlp. signal.go adds the names the three
// signals share (ScopeXItems is ScopeMetrics.metrics, ScopeLogs.log_records
// and ScopeSpans.spans), for code that walks any signal. Each decoder shows
// the message it reads, abridged to the fields it uses, in proto syntax
// beside it.
//
// # Buffer ownership
//
// When the whole body goes to one partition and fits in a record, the only
// chunk's Value is body itself, not a copy. Otherwise chunk values are built
// in the Splitter's buffer. Either way they are valid until the next call of
// Split on the same Splitter, and only while the caller leaves body
// unchanged; produce them (stream.Producer.Produce returns once the bus is
// done with them) before reusing either. Result.Chunks itself is also the
// Splitter's.
//
// A Splitter keeps its buffers sized to the largest request it has split:
// up to the size of the request for the chunks, plus an index of 16 bytes
// per item (48 with KeyTraceID) and a little per message. Bound the body
// size in the ingester, and drop rather than pool a Splitter after an
// unusually large request if memory matters.
package otlpwire
