package schemas

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// Version is the version of the Arrow layout described in README.md. It is
// stored in every schema's metadata (key "sluice.schema.version") and in the
// record envelope; bump it on any incompatible change.
const Version = "1"

// Value types: the "type" child of an AnyValue struct (attribute values and
// log bodies).
const (
	ValueNone   uint8 = iota // KeyValue without a value; LogRecord without a body
	ValueEmpty               // AnyValue with no value set
	ValueString              // str
	ValueBool                // bool
	ValueInt                 // int
	ValueDouble              // double
	ValueBytes               // bytes
	ValueArray               // bytes holds the ArrayValue message encoding
	ValueKVList              // bytes holds the KeyValueList message encoding
	ValueRaw                 // bytes holds the whole AnyValue encoding (fields sluice does not break out)
)

// Metric types: the "type" column of the metrics table.
const (
	MetricNone uint8 = iota // Metric with no data
	MetricGauge
	MetricSum
	MetricHistogram
	MetricExponentialHistogram
	MetricSummary
)

// Column indices of the AnyValue struct.
const (
	AnyType = iota
	AnyStr
	AnyInt
	AnyDouble
	AnyBool
	AnyBytes
)

// Column indices of the resources table: one row per Resource{Metrics,Logs,Spans}.
const (
	ResAttributes = iota // map, null when the resource is absent
	ResDroppedAttributesCount
	ResSchemaURL
	ResResourceExtra // other Resource fields (entity_refs, unknown), wire encoded
	ResExtra         // unknown fields of the Resource* message
)

// Column indices of the scopes table: one row per Scope{Metrics,Logs,Spans}.
const (
	ScopeResourceID = iota
	ScopeName
	ScopeVersion
	ScopeAttributes // map, null when the scope is absent
	ScopeDroppedAttributesCount
	ScopeSchemaURL
	ScopeScopeExtra
	ScopeExtra
)

// Column indices of the metrics table: one row per Metric.
const (
	MetResourceID = iota
	MetScopeID
	MetName
	MetDescription
	MetUnit
	MetType
	MetAggregationTemporality
	MetIsMonotonic
	MetMetadata
	MetDataExtra // unknown fields of the Gauge/Sum/... message
	MetExtra
)

// Column indices of the data points table (Batch.Items for metrics).
const (
	PtResourceID = iota
	PtScopeID
	PtMetricID
	PtStartTimeUnixNano
	PtTimeUnixNano
	PtAttributes
	PtFlags
	PtExemplars
	PtIntValue    // gauge, sum: as_int (null otherwise)
	PtDoubleValue // gauge, sum: as_double (null otherwise)
	PtCount
	PtSum // null when absent (histograms); summaries always set
	PtMin
	PtMax
	PtBucketCounts
	PtExplicitBounds
	PtScale
	PtZeroCount
	PtZeroThreshold
	PtPositiveOffset // null when positive buckets are absent
	PtPositiveBucketCounts
	PtNegativeOffset
	PtNegativeBucketCounts
	PtQuantileValues
	PtExtra
)

// Column indices of the exemplar struct.
const (
	ExTimeUnixNano = iota
	ExIntValue
	ExDoubleValue
	ExSpanID
	ExTraceID
	ExFilteredAttributes
)

// Column indices of the log records table (Batch.Items for logs).
const (
	LogResourceID = iota
	LogScopeID
	LogTimeUnixNano
	LogObservedTimeUnixNano
	LogSeverityNumber
	LogSeverityText
	LogBody
	LogAttributes
	LogDroppedAttributesCount
	LogFlags
	LogTraceID
	LogSpanID
	LogEventName
	LogExtra
)

// Column indices of the spans table (Batch.Items for traces).
const (
	SpanResourceID = iota
	SpanScopeID
	SpanTraceID
	SpanSpanID
	SpanTraceState
	SpanParentSpanID
	SpanFlags
	SpanName
	SpanKind
	SpanStartTimeUnixNano
	SpanEndTimeUnixNano
	SpanAttributes
	SpanDroppedAttributesCount
	SpanEvents
	SpanDroppedEventsCount
	SpanLinks
	SpanDroppedLinksCount
	SpanStatusCode // null when the status is absent
	SpanStatusMessage
	SpanExtra
)

// Column indices of the span event and link structs.
const (
	EvTimeUnixNano = iota
	EvName
	EvAttributes
	EvDroppedAttributesCount
)

const (
	LinkTraceID = iota
	LinkSpanID
	LinkTraceState
	LinkAttributes
	LinkDroppedAttributesCount
	LinkFlags
)

var (
	u8  = arrow.PrimitiveTypes.Uint8
	u32 = arrow.PrimitiveTypes.Uint32
	u64 = arrow.PrimitiveTypes.Uint64
	i32 = arrow.PrimitiveTypes.Int32
	i64 = arrow.PrimitiveTypes.Int64
	f64 = arrow.PrimitiveTypes.Float64
	str = arrow.BinaryTypes.String
	bin = arrow.BinaryTypes.Binary
	bl  = arrow.FixedWidthTypes.Boolean
)

func f(name string, t arrow.DataType) arrow.Field { return arrow.Field{Name: name, Type: t} }
func fn(name string, t arrow.DataType) arrow.Field {
	return arrow.Field{Name: name, Type: t, Nullable: true}
}

// AnyValueType is the struct of an attribute value or log body.
var AnyValueType = arrow.StructOf(
	f("type", u8), f("str", str), f("int", i64), f("double", f64), f("bool", bl), f("bytes", bin),
)

// AttributesType is the type of every attributes column.
var AttributesType = arrow.MapOfWithMetadata(str, arrow.Metadata{}, AnyValueType, arrow.Metadata{})

var exemplarType = arrow.StructOf(
	f("time_unix_nano", u64), fn("int_value", i64), fn("double_value", f64),
	f("span_id", bin), f("trace_id", bin), f("filtered_attributes", AttributesType),
)

var quantileType = arrow.StructOf(f("quantile", f64), f("value", f64))

var eventType = arrow.StructOf(
	f("time_unix_nano", u64), f("name", str), f("attributes", AttributesType), f("dropped_attributes_count", u32),
)

var linkType = arrow.StructOf(
	f("trace_id", bin), f("span_id", bin), f("trace_state", str), f("attributes", AttributesType),
	f("dropped_attributes_count", u32), f("flags", u32),
)

func meta(table string) *arrow.Metadata {
	m := arrow.NewMetadata([]string{"sluice.schema.version", "sluice.table"}, []string{Version, table})
	return &m
}

// The schemas of the tables of a Batch.
var (
	ResourcesSchema = arrow.NewSchema([]arrow.Field{
		fn("attributes", AttributesType), f("dropped_attributes_count", u32), f("schema_url", str),
		f("resource_extra", bin), f("extra", bin),
	}, meta("resources"))

	ScopesSchema = arrow.NewSchema([]arrow.Field{
		f("resource_id", u32), f("name", str), f("version", str), fn("attributes", AttributesType),
		f("dropped_attributes_count", u32), f("schema_url", str), f("scope_extra", bin), f("extra", bin),
	}, meta("scopes"))

	MetricsSchema = arrow.NewSchema([]arrow.Field{
		f("resource_id", u32), f("scope_id", u32), f("name", str), f("description", str), f("unit", str),
		f("type", u8), f("aggregation_temporality", i32), f("is_monotonic", bl), f("metadata", AttributesType),
		f("data_extra", bin), f("extra", bin),
	}, meta("metrics"))

	DataPointsSchema = arrow.NewSchema([]arrow.Field{
		f("resource_id", u32), f("scope_id", u32), f("metric_id", u32),
		f("start_time_unix_nano", u64), f("time_unix_nano", u64), f("attributes", AttributesType),
		f("flags", u32), f("exemplars", arrow.ListOf(exemplarType)),
		fn("int_value", i64), fn("double_value", f64),
		f("count", u64), fn("sum", f64), fn("min", f64), fn("max", f64),
		f("bucket_counts", arrow.ListOf(u64)), f("explicit_bounds", arrow.ListOf(f64)),
		f("scale", i32), f("zero_count", u64), f("zero_threshold", f64),
		fn("positive_offset", i32), f("positive_bucket_counts", arrow.ListOf(u64)),
		fn("negative_offset", i32), f("negative_bucket_counts", arrow.ListOf(u64)),
		f("quantile_values", arrow.ListOf(quantileType)), f("extra", bin),
	}, meta("data_points"))

	LogRecordsSchema = arrow.NewSchema([]arrow.Field{
		f("resource_id", u32), f("scope_id", u32), f("time_unix_nano", u64), f("observed_time_unix_nano", u64),
		f("severity_number", i32), f("severity_text", str), f("body", AnyValueType),
		f("attributes", AttributesType), f("dropped_attributes_count", u32), f("flags", u32),
		f("trace_id", bin), f("span_id", bin), f("event_name", str), f("extra", bin),
	}, meta("log_records"))

	SpansSchema = arrow.NewSchema([]arrow.Field{
		f("resource_id", u32), f("scope_id", u32), f("trace_id", bin), f("span_id", bin),
		f("trace_state", str), f("parent_span_id", bin), f("flags", u32), f("name", str), f("kind", i32),
		f("start_time_unix_nano", u64), f("end_time_unix_nano", u64), f("attributes", AttributesType),
		f("dropped_attributes_count", u32), f("events", arrow.ListOf(eventType)), f("dropped_events_count", u32),
		f("links", arrow.ListOf(linkType)), f("dropped_links_count", u32),
		fn("status_code", i32), f("status_message", str), f("extra", bin),
	}, meta("spans"))
)

// ItemsSchema is the schema of Batch.Items for sig.
func ItemsSchema(sig otlpwire.Signal) *arrow.Schema {
	switch sig {
	case otlpwire.Metrics:
		return DataPointsSchema
	case otlpwire.Logs:
		return LogRecordsSchema
	}
	return SpansSchema
}
