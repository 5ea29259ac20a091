package otlpwire

// The numbers of the fields of the OTLP messages sluice reads and writes,
// named <Message><Field> after opentelemetry-proto's message and field names
// (a nested message with its parent's name in front, as in SpanEventName;
// ID and URL as Go spells them). Each message is complete, and each field's
// comment is its declaration. fields_test.go checks every constant against
// the descriptors of go.opentelemetry.io/proto/otlp, so a name here is the
// field of that name there.

// message ExportMetricsServiceRequest (opentelemetry/proto/collector/metrics/v1/metrics_service.proto)
const (
	ExportMetricsServiceRequestResourceMetrics FieldNum = 1 // repeated ResourceMetrics resource_metrics
)

// message ExportLogsServiceRequest (opentelemetry/proto/collector/logs/v1/logs_service.proto)
const (
	ExportLogsServiceRequestResourceLogs FieldNum = 1 // repeated ResourceLogs resource_logs
)

// message ExportTraceServiceRequest (opentelemetry/proto/collector/trace/v1/trace_service.proto)
const (
	ExportTraceServiceRequestResourceSpans FieldNum = 1 // repeated ResourceSpans resource_spans
)

// message ResourceMetrics (opentelemetry/proto/metrics/v1/metrics.proto)
const (
	ResourceMetricsResource     FieldNum = 1 // Resource resource
	ResourceMetricsScopeMetrics FieldNum = 2 // repeated ScopeMetrics scope_metrics
	ResourceMetricsSchemaURL    FieldNum = 3 // string schema_url
)

// message ResourceLogs (opentelemetry/proto/logs/v1/logs.proto)
const (
	ResourceLogsResource  FieldNum = 1 // Resource resource
	ResourceLogsScopeLogs FieldNum = 2 // repeated ScopeLogs scope_logs
	ResourceLogsSchemaURL FieldNum = 3 // string schema_url
)

// message ResourceSpans (opentelemetry/proto/trace/v1/trace.proto)
const (
	ResourceSpansResource   FieldNum = 1 // Resource resource
	ResourceSpansScopeSpans FieldNum = 2 // repeated ScopeSpans scope_spans
	ResourceSpansSchemaURL  FieldNum = 3 // string schema_url
)

// message Resource (opentelemetry/proto/resource/v1/resource.proto)
const (
	ResourceAttributes             FieldNum = 1 // repeated KeyValue attributes
	ResourceDroppedAttributesCount FieldNum = 2 // uint32 dropped_attributes_count
	ResourceEntityRefs             FieldNum = 3 // repeated EntityRef entity_refs
)

// message ScopeMetrics (opentelemetry/proto/metrics/v1/metrics.proto)
const (
	ScopeMetricsScope     FieldNum = 1 // InstrumentationScope scope
	ScopeMetricsMetrics   FieldNum = 2 // repeated Metric metrics
	ScopeMetricsSchemaURL FieldNum = 3 // string schema_url
)

// message ScopeLogs (opentelemetry/proto/logs/v1/logs.proto)
const (
	ScopeLogsScope      FieldNum = 1 // InstrumentationScope scope
	ScopeLogsLogRecords FieldNum = 2 // repeated LogRecord log_records
	ScopeLogsSchemaURL  FieldNum = 3 // string schema_url
)

// message ScopeSpans (opentelemetry/proto/trace/v1/trace.proto)
const (
	ScopeSpansScope     FieldNum = 1 // InstrumentationScope scope
	ScopeSpansSpans     FieldNum = 2 // repeated Span spans
	ScopeSpansSchemaURL FieldNum = 3 // string schema_url
)

// message InstrumentationScope (opentelemetry/proto/common/v1/common.proto)
const (
	InstrumentationScopeName                   FieldNum = 1 // string name
	InstrumentationScopeVersion                FieldNum = 2 // string version
	InstrumentationScopeAttributes             FieldNum = 3 // repeated KeyValue attributes
	InstrumentationScopeDroppedAttributesCount FieldNum = 4 // uint32 dropped_attributes_count
)

// message Metric (opentelemetry/proto/metrics/v1/metrics.proto)
const (
	MetricName                 FieldNum = 1  // string name
	MetricDescription          FieldNum = 2  // string description
	MetricUnit                 FieldNum = 3  // string unit
	MetricGauge                FieldNum = 5  // Gauge gauge (oneof data)
	MetricSum                  FieldNum = 7  // Sum sum (oneof data)
	MetricHistogram            FieldNum = 9  // Histogram histogram (oneof data)
	MetricExponentialHistogram FieldNum = 10 // ExponentialHistogram exponential_histogram (oneof data)
	MetricSummary              FieldNum = 11 // Summary summary (oneof data)
	MetricMetadata             FieldNum = 12 // repeated KeyValue metadata
)

// message Gauge (opentelemetry/proto/metrics/v1/metrics.proto)
const (
	GaugeDataPoints FieldNum = 1 // repeated NumberDataPoint data_points
)

// message Sum (opentelemetry/proto/metrics/v1/metrics.proto)
const (
	SumDataPoints             FieldNum = 1 // repeated NumberDataPoint data_points
	SumAggregationTemporality FieldNum = 2 // AggregationTemporality aggregation_temporality
	SumIsMonotonic            FieldNum = 3 // bool is_monotonic
)

// message Histogram (opentelemetry/proto/metrics/v1/metrics.proto)
const (
	HistogramDataPoints             FieldNum = 1 // repeated HistogramDataPoint data_points
	HistogramAggregationTemporality FieldNum = 2 // AggregationTemporality aggregation_temporality
)

// message ExponentialHistogram (opentelemetry/proto/metrics/v1/metrics.proto)
const (
	ExponentialHistogramDataPoints             FieldNum = 1 // repeated ExponentialHistogramDataPoint data_points
	ExponentialHistogramAggregationTemporality FieldNum = 2 // AggregationTemporality aggregation_temporality
)

// message Summary (opentelemetry/proto/metrics/v1/metrics.proto)
const (
	SummaryDataPoints FieldNum = 1 // repeated SummaryDataPoint data_points
)

// message NumberDataPoint (opentelemetry/proto/metrics/v1/metrics.proto)
const (
	NumberDataPointAttributes        FieldNum = 7 // repeated KeyValue attributes
	NumberDataPointStartTimeUnixNano FieldNum = 2 // fixed64 start_time_unix_nano
	NumberDataPointTimeUnixNano      FieldNum = 3 // fixed64 time_unix_nano
	NumberDataPointAsDouble          FieldNum = 4 // double as_double (oneof value)
	NumberDataPointAsInt             FieldNum = 6 // sfixed64 as_int (oneof value)
	NumberDataPointExemplars         FieldNum = 5 // repeated Exemplar exemplars
	NumberDataPointFlags             FieldNum = 8 // uint32 flags
)

// message HistogramDataPoint (opentelemetry/proto/metrics/v1/metrics.proto)
const (
	HistogramDataPointAttributes        FieldNum = 9  // repeated KeyValue attributes
	HistogramDataPointStartTimeUnixNano FieldNum = 2  // fixed64 start_time_unix_nano
	HistogramDataPointTimeUnixNano      FieldNum = 3  // fixed64 time_unix_nano
	HistogramDataPointCount             FieldNum = 4  // fixed64 count
	HistogramDataPointSum               FieldNum = 5  // optional double sum
	HistogramDataPointBucketCounts      FieldNum = 6  // repeated fixed64 bucket_counts
	HistogramDataPointExplicitBounds    FieldNum = 7  // repeated double explicit_bounds
	HistogramDataPointExemplars         FieldNum = 8  // repeated Exemplar exemplars
	HistogramDataPointFlags             FieldNum = 10 // uint32 flags
	HistogramDataPointMin               FieldNum = 11 // optional double min
	HistogramDataPointMax               FieldNum = 12 // optional double max
)

// message ExponentialHistogramDataPoint (opentelemetry/proto/metrics/v1/metrics.proto)
const (
	ExponentialHistogramDataPointAttributes        FieldNum = 1  // repeated KeyValue attributes
	ExponentialHistogramDataPointStartTimeUnixNano FieldNum = 2  // fixed64 start_time_unix_nano
	ExponentialHistogramDataPointTimeUnixNano      FieldNum = 3  // fixed64 time_unix_nano
	ExponentialHistogramDataPointCount             FieldNum = 4  // fixed64 count
	ExponentialHistogramDataPointSum               FieldNum = 5  // optional double sum
	ExponentialHistogramDataPointScale             FieldNum = 6  // sint32 scale
	ExponentialHistogramDataPointZeroCount         FieldNum = 7  // fixed64 zero_count
	ExponentialHistogramDataPointPositive          FieldNum = 8  // Buckets positive
	ExponentialHistogramDataPointNegative          FieldNum = 9  // Buckets negative
	ExponentialHistogramDataPointFlags             FieldNum = 10 // uint32 flags
	ExponentialHistogramDataPointExemplars         FieldNum = 11 // repeated Exemplar exemplars
	ExponentialHistogramDataPointMin               FieldNum = 12 // optional double min
	ExponentialHistogramDataPointMax               FieldNum = 13 // optional double max
	ExponentialHistogramDataPointZeroThreshold     FieldNum = 14 // double zero_threshold
)

// message ExponentialHistogramDataPoint.Buckets (opentelemetry/proto/metrics/v1/metrics.proto)
const (
	ExponentialHistogramDataPointBucketsOffset       FieldNum = 1 // sint32 offset
	ExponentialHistogramDataPointBucketsBucketCounts FieldNum = 2 // repeated uint64 bucket_counts
)

// message SummaryDataPoint (opentelemetry/proto/metrics/v1/metrics.proto)
const (
	SummaryDataPointAttributes        FieldNum = 7 // repeated KeyValue attributes
	SummaryDataPointStartTimeUnixNano FieldNum = 2 // fixed64 start_time_unix_nano
	SummaryDataPointTimeUnixNano      FieldNum = 3 // fixed64 time_unix_nano
	SummaryDataPointCount             FieldNum = 4 // fixed64 count
	SummaryDataPointSum               FieldNum = 5 // double sum
	SummaryDataPointQuantileValues    FieldNum = 6 // repeated ValueAtQuantile quantile_values
	SummaryDataPointFlags             FieldNum = 8 // uint32 flags
)

// message SummaryDataPoint.ValueAtQuantile (opentelemetry/proto/metrics/v1/metrics.proto)
const (
	SummaryDataPointValueAtQuantileQuantile FieldNum = 1 // double quantile
	SummaryDataPointValueAtQuantileValue    FieldNum = 2 // double value
)

// message Exemplar (opentelemetry/proto/metrics/v1/metrics.proto)
const (
	ExemplarFilteredAttributes FieldNum = 7 // repeated KeyValue filtered_attributes
	ExemplarTimeUnixNano       FieldNum = 2 // fixed64 time_unix_nano
	ExemplarAsDouble           FieldNum = 3 // double as_double (oneof value)
	ExemplarAsInt              FieldNum = 6 // sfixed64 as_int (oneof value)
	ExemplarSpanID             FieldNum = 4 // bytes span_id
	ExemplarTraceID            FieldNum = 5 // bytes trace_id
)

// message LogRecord (opentelemetry/proto/logs/v1/logs.proto)
const (
	LogRecordTimeUnixNano           FieldNum = 1  // fixed64 time_unix_nano
	LogRecordObservedTimeUnixNano   FieldNum = 11 // fixed64 observed_time_unix_nano
	LogRecordSeverityNumber         FieldNum = 2  // SeverityNumber severity_number
	LogRecordSeverityText           FieldNum = 3  // string severity_text
	LogRecordBody                   FieldNum = 5  // AnyValue body
	LogRecordAttributes             FieldNum = 6  // repeated KeyValue attributes
	LogRecordDroppedAttributesCount FieldNum = 7  // uint32 dropped_attributes_count
	LogRecordFlags                  FieldNum = 8  // fixed32 flags
	LogRecordTraceID                FieldNum = 9  // bytes trace_id
	LogRecordSpanID                 FieldNum = 10 // bytes span_id
	LogRecordEventName              FieldNum = 12 // string event_name
)

// message Span (opentelemetry/proto/trace/v1/trace.proto)
const (
	SpanTraceID                FieldNum = 1  // bytes trace_id
	SpanSpanID                 FieldNum = 2  // bytes span_id
	SpanTraceState             FieldNum = 3  // string trace_state
	SpanParentSpanID           FieldNum = 4  // bytes parent_span_id
	SpanFlags                  FieldNum = 16 // fixed32 flags
	SpanName                   FieldNum = 5  // string name
	SpanKind                   FieldNum = 6  // SpanKind kind
	SpanStartTimeUnixNano      FieldNum = 7  // fixed64 start_time_unix_nano
	SpanEndTimeUnixNano        FieldNum = 8  // fixed64 end_time_unix_nano
	SpanAttributes             FieldNum = 9  // repeated KeyValue attributes
	SpanDroppedAttributesCount FieldNum = 10 // uint32 dropped_attributes_count
	SpanEvents                 FieldNum = 11 // repeated Event events
	SpanDroppedEventsCount     FieldNum = 12 // uint32 dropped_events_count
	SpanLinks                  FieldNum = 13 // repeated Link links
	SpanDroppedLinksCount      FieldNum = 14 // uint32 dropped_links_count
	SpanStatus                 FieldNum = 15 // Status status
)

// message Span.Event (opentelemetry/proto/trace/v1/trace.proto)
const (
	SpanEventTimeUnixNano           FieldNum = 1 // fixed64 time_unix_nano
	SpanEventName                   FieldNum = 2 // string name
	SpanEventAttributes             FieldNum = 3 // repeated KeyValue attributes
	SpanEventDroppedAttributesCount FieldNum = 4 // uint32 dropped_attributes_count
)

// message Span.Link (opentelemetry/proto/trace/v1/trace.proto)
const (
	SpanLinkTraceID                FieldNum = 1 // bytes trace_id
	SpanLinkSpanID                 FieldNum = 2 // bytes span_id
	SpanLinkTraceState             FieldNum = 3 // string trace_state
	SpanLinkAttributes             FieldNum = 4 // repeated KeyValue attributes
	SpanLinkDroppedAttributesCount FieldNum = 5 // uint32 dropped_attributes_count
	SpanLinkFlags                  FieldNum = 6 // fixed32 flags
)

// message Status (opentelemetry/proto/trace/v1/trace.proto)
const (
	StatusMessage FieldNum = 2 // string message
	StatusCode    FieldNum = 3 // StatusCode code
)

// message KeyValue (opentelemetry/proto/common/v1/common.proto)
const (
	KeyValueKey         FieldNum = 1 // string key
	KeyValueValue       FieldNum = 2 // AnyValue value
	KeyValueKeyStrindex FieldNum = 3 // int32 key_strindex
)

// message AnyValue (opentelemetry/proto/common/v1/common.proto)
const (
	AnyValueStringValue         FieldNum = 1 // string string_value (oneof value)
	AnyValueBoolValue           FieldNum = 2 // bool bool_value (oneof value)
	AnyValueIntValue            FieldNum = 3 // int64 int_value (oneof value)
	AnyValueDoubleValue         FieldNum = 4 // double double_value (oneof value)
	AnyValueArrayValue          FieldNum = 5 // ArrayValue array_value (oneof value)
	AnyValueKvlistValue         FieldNum = 6 // KeyValueList kvlist_value (oneof value)
	AnyValueBytesValue          FieldNum = 7 // bytes bytes_value (oneof value)
	AnyValueStringValueStrindex FieldNum = 8 // int32 string_value_strindex (oneof value)
)

// message ArrayValue (opentelemetry/proto/common/v1/common.proto)
const (
	ArrayValueValues FieldNum = 1 // repeated AnyValue values
)

// message KeyValueList (opentelemetry/proto/common/v1/common.proto)
const (
	KeyValueListValues FieldNum = 1 // repeated KeyValue values
)
