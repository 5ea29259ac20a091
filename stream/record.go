package stream

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/tenant"
)

// Header names carried by every record sluice writes.
const (
	HeaderContentType = "content-type"       // media type of Value
	HeaderTenant      = "sluice-tenant"      // X-Scope-OrgID of the request
	HeaderReceivedAt  = "sluice-received-at" // receive time, RFC 3339 with nanoseconds
	HeaderItems       = "sluice-items"       // decimal count of datapoints, log records or spans in Value
	HeaderSignal      = "sluice-signal"      // metrics, logs or traces
	HeaderError       = "sluice-error"       // DLQ: why the record was dead-lettered
	HeaderOrigin      = "sluice-origin"      // DLQ: topic/partition/offset the record came from
	HeaderTruncated   = "sluice-truncated"   // DLQ: the value was cut to fit; the size in bytes of the whole
)

// Content types of record values.
const (
	ContentTypeOTLPProto = "application/x-protobuf"
	// ContentTypeOTLPJSON: OTLP/JSON, which agents' Kafka exporters write
	// with encoding otlp_json (without the header: the worker is told,
	// worker.raw_encoding). The worker reads it; nothing of sluice's
	// writes it to the bus.
	ContentTypeOTLPJSON = "application/json"
	// ContentTypeArrow: a processed record, an Arrow batch in the encoding
	// of schemas.WriteBatch (a column codec in one zstd frame, smaller than
	// Arrow's own IPC format; read it with schemas.ReadBatch).
	ContentTypeArrow = "application/x-sluice-arrow-batch"
	// ContentTypeAggregate: a record of the aggregation topic, points with
	// their input and output series hashes and how they merge
	// (aggregate.AppendRecord).
	ContentTypeAggregate = "application/x-sluice-aggregate"
)

// CompressedContent reports whether values of contentType are compressed
// already, so that a bus sends them without compressing them again: the
// aggregation records (an S2 block each, in which the bus's zstd still
// finds a little, at three times the CPU S2 took). Processed records are
// left to the bus's codec: zstd gives their zstd frames up at once.
func CompressedContent(contentType string) bool {
	return contentType == ContentTypeAggregate
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one message on the bus.
type Record struct {
	Topic string
	// Partition to write to; a negative value lets the bus choose (by Key
	// when set). On consume, the partition the record was read from.
	Partition int32
	// Offset is the record's position (a Kafka offset in its partition; a
	// JetStream stream sequence, which numbers all partitions of a topic
	// together). Set by consumers; compare offsets of one bus only.
	Offset int64
	Key    []byte
	Value  []byte
	// Headers keep their order on Kafka and the memory bus. NATS headers
	// are a map of text: they come back sorted by key (the values of one
	// key in order), and values must be text without white space at their
	// ends (bustest.Caps: TextHeaders, SortedHeaders). sluice's own headers
	// are text and read by key. Names starting with "sluice-key",
	// "sluice-timestamp" or "Nats-" are reserved by the NATS bus.
	Headers []Header
	// Timestamp is the producer's time of the record; zero lets the bus
	// stamp it. Consumers get it back (StartAtTime on NATS compares the
	// server's store time instead).
	Timestamp time.Time

	// Handle is bus-specific state set by Consumer.Poll and needed by
	// Consumer.Commit. Callers must leave it untouched.
	Handle any
}

// Header returns the value of the first header named key, or nil.
func (r *Record) Header(key string) []byte {
	for i := range r.Headers {
		if r.Headers[i].Key == key {
			return r.Headers[i].Value
		}
	}
	return nil
}

// Tenant returns r's tenant, its HeaderTenant header. A record without the
// header, or with it empty, has the tenant "" (each stage treats it as it
// always has: the worker keeps it, a sink sends no tenant or, the file
// sink, writes to a directory of its own). Any other value must be a valid
// tenant name (internal/tenant): the ingesters write nothing else, but any
// client of the bus (a producer on Kafka, a NATS client) can write records
// with any header, and a name such as "../../x" or "a|b" would reach a
// path or pose as two tenants. The error names the header and the record.
func (r *Record) Tenant() (string, error) {
	h := r.Header(HeaderTenant)
	if len(h) == 0 {
		return "", nil
	}
	if err := tenant.Validate(string(h)); err != nil {
		return "", fmt.Errorf("record %s/%d@%d: header %s: %w", r.Topic, r.Partition, r.Offset, HeaderTenant, err)
	}
	return string(h), nil
}

// Overhead is what besides its value counts towards r's size on the bus:
// key and headers (with a few bytes of framing each).
func (r *Record) Overhead() int {
	n := len(r.Key)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 8
	}
	return n
}

// Truncated is a copy of r, a dead letter, with its value cut to n bytes,
// HeaderTruncated giving the size of the whole (unless r was cut before):
// a dead letter must fit the dead-letter topic, and one that never does
// would hold its partition for good. The record itself stays in its topic
// for its retention.
func Truncated(r *Record, n int) *Record {
	t := *r
	if r.Header(HeaderTruncated) == nil {
		t.Headers = append(append([]Header(nil), r.Headers...),
			Header{Key: HeaderTruncated, Value: strconv.AppendInt(nil, int64(len(r.Value)), 10)})
	}
	t.Value = r.Value[:max(0, min(len(r.Value), n))]
	return &t
}

// MaxErrorHeader is the longest sluice-error header value: a dead letter
// must fit the bus as its record did, and ingested records leave only a
// little room below the record limit for headers.
const MaxErrorHeader = 256

// ErrorHeader is the sluice-error header of a dead letter: reason, cut to
// MaxErrorHeader bytes (on a UTF-8 boundary, marked with "...").
func ErrorHeader(reason string) Header {
	if len(reason) > MaxErrorHeader {
		reason = strings.ToValidUTF8(reason[:MaxErrorHeader-3], "") + "..."
	}
	return Header{Key: HeaderError, Value: []byte(reason)}
}
