package promrw

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The remote write 1.0 messages (prometheus/prompb types.proto and
// remote.proto), encoded by hand:
//
//	WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
//	TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
//	               repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
//	Label        { string name = 1; string value = 2; }
//	Sample       { double value = 1; int64 timestamp = 2; }
//	Histogram    { uint64 count_int = 1; double sum = 3; sint32 schema = 4;
//	               double zero_threshold = 5; uint64 zero_count_int = 6;
//	               repeated BucketSpan negative_spans = 8; repeated sint64 negative_deltas = 9;
//	               repeated BucketSpan positive_spans = 11; repeated sint64 positive_deltas = 12;
//	               ResetHint reset_hint = 14; int64 timestamp = 15; }
//	BucketSpan   { sint32 offset = 1; uint32 length = 2; }
const (
	fWriteTimeSeries = 1

	fTSLabels     = 1
	fTSSamples    = 2
	fTSHistograms = 4

	fLabelName  = 1
	fLabelValue = 2

	fSampleValue     = 1
	fSampleTimestamp = 2

	fHistCountInt      = 1
	fHistSum           = 3
	fHistSchema        = 4
	fHistZeroThreshold = 5
	fHistZeroCountInt  = 6
	fHistNegSpans      = 8
	fHistNegDeltas     = 9
	fHistPosSpans      = 11
	fHistPosDeltas     = 12
	fHistTimestamp     = 15

	fSpanOffset = 1
	fSpanLength = 2
)

// staleNaN is Prometheus' staleness marker, sent for points flagged
// "no recorded value".
var staleNaN = math.Float64frombits(0x7ff0000000000002)

func appendLabel(dst []byte, name, value string) []byte {
	n := 1 + protowire.SizeBytes(len(name)) + 1 + protowire.SizeBytes(len(value))
	dst = protowire.AppendTag(dst, fTSLabels, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(n))
	dst = protowire.AppendTag(dst, fLabelName, protowire.BytesType)
	dst = protowire.AppendString(dst, name)
	dst = protowire.AppendTag(dst, fLabelValue, protowire.BytesType)
	return protowire.AppendString(dst, value)
}

func appendSample(dst []byte, v float64, tsMs int64) []byte {
	n := 1 + 8 + 1 + protowire.SizeVarint(uint64(tsMs))
	dst = protowire.AppendTag(dst, fTSSamples, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(n))
	dst = protowire.AppendTag(dst, fSampleValue, protowire.Fixed64Type)
	dst = protowire.AppendFixed64(dst, math.Float64bits(v))
	dst = protowire.AppendTag(dst, fSampleTimestamp, protowire.VarintType)
	return protowire.AppendVarint(dst, uint64(tsMs))
}

// nativeHist is an integer native histogram with one span per side
// (zero-count buckets inside a span are allowed).
type nativeHist struct {
	count, zeroCount uint64
	sum, zeroThresh  float64
	schema           int32
	posOffset        int32 // Prometheus bucket index of posCounts[0]
	negOffset        int32
	posCounts        []uint64
	negCounts        []uint64
	tsMs             int64
}

// appendHistogram appends h as a TimeSeries.histograms field, using
// scratch for the message body.
func appendHistogram(dst, scratch []byte, h *nativeHist) ([]byte, []byte) {
	b := scratch[:0]
	b = protowire.AppendTag(b, fHistCountInt, protowire.VarintType)
	b = protowire.AppendVarint(b, h.count)
	b = protowire.AppendTag(b, fHistSum, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(h.sum))
	b = protowire.AppendTag(b, fHistSchema, protowire.VarintType)
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(h.schema)))
	b = protowire.AppendTag(b, fHistZeroThreshold, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(h.zeroThresh))
	b = protowire.AppendTag(b, fHistZeroCountInt, protowire.VarintType)
	b = protowire.AppendVarint(b, h.zeroCount)
	b = appendBuckets(b, fHistNegSpans, fHistNegDeltas, h.negOffset, h.negCounts)
	b = appendBuckets(b, fHistPosSpans, fHistPosDeltas, h.posOffset, h.posCounts)
	b = protowire.AppendTag(b, fHistTimestamp, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(h.tsMs))
	dst = protowire.AppendTag(dst, fTSHistograms, protowire.BytesType)
	dst = protowire.AppendBytes(dst, b)
	return dst, b
}

// appendBuckets writes one span and the delta-encoded counts.
func appendBuckets(b []byte, spanField, deltaField protowire.Number, offset int32, counts []uint64) []byte {
	if len(counts) == 0 {
		return b
	}
	n := 1 + protowire.SizeVarint(protowire.EncodeZigZag(int64(offset))) + 1 + protowire.SizeVarint(uint64(len(counts)))
	b = protowire.AppendTag(b, spanField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b = protowire.AppendTag(b, fSpanOffset, protowire.VarintType)
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(offset)))
	b = protowire.AppendTag(b, fSpanLength, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(len(counts)))
	size := 0
	prev := int64(0)
	for _, c := range counts {
		size += protowire.SizeVarint(protowire.EncodeZigZag(int64(c) - prev))
		prev = int64(c)
	}
	b = protowire.AppendTag(b, deltaField, protowire.BytesType) // packed
	b = protowire.AppendVarint(b, uint64(size))
	prev = 0
	for _, c := range counts {
		b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(c)-prev))
		prev = int64(c)
	}
	return b
}
