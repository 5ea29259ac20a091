package schemas

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"google.golang.org/protobuf/encoding/protowire"
)

type pointReader struct {
	start, time, count, zeroCount  *array.Uint64
	attrs                          attrReader
	flags                          *array.Uint32
	exemplars                      *array.List
	exTime                         *array.Uint64
	exInt                          *array.Int64
	exDouble                       *array.Float64
	exSpan, exTrace                *array.Binary
	exAttrs                        attrReader
	intValue                       *array.Int64
	doubleValue, sum, min, max, zt *array.Float64
	bucketCounts, bounds           *array.List
	bucketCountsV                  *array.Uint64
	boundsV                        *array.Float64
	scale, posOffset, negOffset    *array.Int32
	posCounts, negCounts           *array.List
	posCountsV, negCountsV         *array.Uint64
	quantiles                      *array.List
	qQuantile, qValue              *array.Float64
	extra                          *array.Binary
}

func metricsWriter(b *Batch) (func([]byte, int) []byte, error) {
	mc := newCols(b.Metrics, MetricsSchema, "metrics")
	mScope := col[*array.Uint32](mc, MetScopeID)
	mName := col[*array.String](mc, MetName)
	mDesc := col[*array.String](mc, MetDescription)
	mUnit := col[*array.String](mc, MetUnit)
	mType := col[*array.Uint8](mc, MetType)
	mTemp := col[*array.Int32](mc, MetAggregationTemporality)
	mMono := col[*array.Boolean](mc, MetIsMonotonic)
	mMeta := attrCol(mc, MetMetadata)
	mDataExtra := col[*array.Binary](mc, MetDataExtra)
	mExtra := col[*array.Binary](mc, MetExtra)
	if mc.err != nil {
		return nil, mc.err
	}
	c := newCols(b.Items, DataPointsSchema, "data_points")
	metricID := col[*array.Uint32](c, PtMetricID)
	r := &pointReader{
		start:        col[*array.Uint64](c, PtStartTimeUnixNano),
		time:         col[*array.Uint64](c, PtTimeUnixNano),
		attrs:        attrCol(c, PtAttributes),
		flags:        col[*array.Uint32](c, PtFlags),
		exemplars:    col[*array.List](c, PtExemplars),
		intValue:     col[*array.Int64](c, PtIntValue),
		doubleValue:  col[*array.Float64](c, PtDoubleValue),
		count:        col[*array.Uint64](c, PtCount),
		sum:          col[*array.Float64](c, PtSum),
		min:          col[*array.Float64](c, PtMin),
		max:          col[*array.Float64](c, PtMax),
		bucketCounts: col[*array.List](c, PtBucketCounts),
		bounds:       col[*array.List](c, PtExplicitBounds),
		scale:        col[*array.Int32](c, PtScale),
		zeroCount:    col[*array.Uint64](c, PtZeroCount),
		zt:           col[*array.Float64](c, PtZeroThreshold),
		posOffset:    col[*array.Int32](c, PtPositiveOffset),
		posCounts:    col[*array.List](c, PtPositiveBucketCounts),
		negOffset:    col[*array.Int32](c, PtNegativeOffset),
		negCounts:    col[*array.List](c, PtNegativeBucketCounts),
		quantiles:    col[*array.List](c, PtQuantileValues),
		extra:        col[*array.Binary](c, PtExtra),
	}
	if c.err != nil {
		return nil, c.err
	}
	ex := r.exemplars.ListValues().(*array.Struct)
	r.exTime = ex.Field(ExTimeUnixNano).(*array.Uint64)
	r.exInt = ex.Field(ExIntValue).(*array.Int64)
	r.exDouble = ex.Field(ExDoubleValue).(*array.Float64)
	r.exSpan = ex.Field(ExSpanID).(*array.Binary)
	r.exTrace = ex.Field(ExTraceID).(*array.Binary)
	var ok bool
	if r.exAttrs, ok = newAttrReader(ex.Field(ExFilteredAttributes)); !ok {
		return nil, fmt.Errorf("%w: exemplar attributes", ErrSchema)
	}
	r.bucketCountsV = r.bucketCounts.ListValues().(*array.Uint64)
	r.boundsV = r.bounds.ListValues().(*array.Float64)
	r.posCountsV = r.posCounts.ListValues().(*array.Uint64)
	r.negCountsV = r.negCounts.ListValues().(*array.Uint64)
	q := r.quantiles.ListValues().(*array.Struct)
	r.qQuantile = q.Field(0).(*array.Float64)
	r.qValue = q.Field(1).(*array.Float64)

	metricsOf, err := groupBy(mScope, int(b.Scopes.NumRows()), "metrics")
	if err != nil {
		return nil, err
	}
	pointsOf, err := groupBy(metricID, int(b.Metrics.NumRows()), "data_points")
	if err != nil {
		return nil, err
	}
	return func(dst []byte, s int) []byte {
		for _, m := range metricsOf.of(s) {
			m := int(m)
			var ms int
			dst, ms = openMsg(dst, otlpwire.ScopeMetricsMetrics, 3)
			dst = appendStr(dst, otlpwire.MetricName, mName.Value(m))
			dst = appendStr(dst, otlpwire.MetricDescription, mDesc.Value(m))
			dst = appendStr(dst, otlpwire.MetricUnit, mUnit.Value(m))
			if kind := mType.Value(m); kind != MetricNone && int(kind) < len(metricDataField) {
				var ds int
				dst, ds = openMsg(dst, metricDataField[kind], 3)
				for _, i := range pointsOf.of(m) {
					dst = r.appendPoint(dst, kind, int(i))
				}
				if kind == MetricSum || kind == MetricHistogram || kind == MetricExponentialHistogram {
					dst = appendVarintF(dst, otlpwire.DataAggregationTemporality, i32v(mTemp.Value(m)))
				}
				if kind == MetricSum && mMono.Value(m) {
					dst = append(otlpwire.AppendTag(dst, otlpwire.SumIsMonotonic, otlpwire.WireVarint), 1)
				}
				dst = append(dst, mDataExtra.Value(m)...)
				dst = closeMsg(dst, ds, 3)
			}
			dst = mMeta.appendKVs(dst, otlpwire.MetricMetadata, m)
			dst = append(dst, mExtra.Value(m)...)
			dst = closeMsg(dst, ms, 3)
		}
		return dst
	}, nil
}

func (r *pointReader) appendPoint(dst []byte, kind uint8, i int) []byte {
	dst, ps := openMsg(dst, otlpwire.DataPoints, 2)
	switch kind {
	case MetricGauge, MetricSum:
		dst = r.attrs.appendKVs(dst, otlpwire.NumberDataPointAttributes, i)
		dst = appendFixed64F(dst, otlpwire.NumberDataPointStartTimeUnixNano, r.start.Value(i))
		dst = appendFixed64F(dst, otlpwire.NumberDataPointTimeUnixNano, r.time.Value(i))
		dst = appendOptDouble(dst, otlpwire.NumberDataPointAsDouble, r.doubleValue, i)
		dst = appendOptInt64(dst, otlpwire.NumberDataPointAsInt, r.intValue, i)
		dst = r.appendExemplars(dst, otlpwire.NumberDataPointExemplars, i)
		dst = appendVarintF(dst, otlpwire.NumberDataPointFlags, uint64(r.flags.Value(i)))
	case MetricHistogram:
		dst = r.attrs.appendKVs(dst, otlpwire.HistogramDataPointAttributes, i)
		dst = appendFixed64F(dst, otlpwire.HistogramDataPointStartTimeUnixNano, r.start.Value(i))
		dst = appendFixed64F(dst, otlpwire.HistogramDataPointTimeUnixNano, r.time.Value(i))
		dst = appendFixed64F(dst, otlpwire.HistogramDataPointCount, r.count.Value(i))
		dst = appendOptDouble(dst, otlpwire.HistogramDataPointSum, r.sum, i)
		from, to := r.bucketCounts.ValueOffsets(i)
		if to > from {
			dst = otlpwire.AppendTag(dst, otlpwire.HistogramDataPointBucketCounts, otlpwire.WireLen)
			dst = protowire.AppendVarint(dst, uint64(8*(to-from)))
			for _, v := range r.bucketCountsV.Uint64Values()[from:to] {
				dst = protowire.AppendFixed64(dst, v)
			}
		}
		from, to = r.bounds.ValueOffsets(i)
		if to > from {
			dst = otlpwire.AppendTag(dst, otlpwire.HistogramDataPointExplicitBounds, otlpwire.WireLen)
			dst = protowire.AppendVarint(dst, uint64(8*(to-from)))
			for _, v := range r.boundsV.Float64Values()[from:to] {
				dst = protowire.AppendFixed64(dst, math.Float64bits(v))
			}
		}
		dst = r.appendExemplars(dst, otlpwire.HistogramDataPointExemplars, i)
		dst = appendVarintF(dst, otlpwire.HistogramDataPointFlags, uint64(r.flags.Value(i)))
		dst = appendOptDouble(dst, otlpwire.HistogramDataPointMin, r.min, i)
		dst = appendOptDouble(dst, otlpwire.HistogramDataPointMax, r.max, i)
	case MetricExponentialHistogram:
		dst = r.attrs.appendKVs(dst, otlpwire.ExponentialHistogramDataPointAttributes, i)
		dst = appendFixed64F(dst, otlpwire.ExponentialHistogramDataPointStartTimeUnixNano, r.start.Value(i))
		dst = appendFixed64F(dst, otlpwire.ExponentialHistogramDataPointTimeUnixNano, r.time.Value(i))
		dst = appendFixed64F(dst, otlpwire.ExponentialHistogramDataPointCount, r.count.Value(i))
		dst = appendOptDouble(dst, otlpwire.ExponentialHistogramDataPointSum, r.sum, i)
		dst = appendVarintF(dst, otlpwire.ExponentialHistogramDataPointScale, protowire.EncodeZigZag(int64(r.scale.Value(i))))
		dst = appendFixed64F(dst, otlpwire.ExponentialHistogramDataPointZeroCount, r.zeroCount.Value(i))
		dst = appendBuckets(dst, otlpwire.ExponentialHistogramDataPointPositive, r.posOffset, r.posCounts, r.posCountsV, i)
		dst = appendBuckets(dst, otlpwire.ExponentialHistogramDataPointNegative, r.negOffset, r.negCounts, r.negCountsV, i)
		dst = appendVarintF(dst, otlpwire.ExponentialHistogramDataPointFlags, uint64(r.flags.Value(i)))
		dst = r.appendExemplars(dst, otlpwire.ExponentialHistogramDataPointExemplars, i)
		dst = appendOptDouble(dst, otlpwire.ExponentialHistogramDataPointMin, r.min, i)
		dst = appendOptDouble(dst, otlpwire.ExponentialHistogramDataPointMax, r.max, i)
		dst = appendDouble(dst, otlpwire.ExponentialHistogramDataPointZeroThreshold, r.zt.Value(i))
	case MetricSummary:
		dst = r.attrs.appendKVs(dst, otlpwire.SummaryDataPointAttributes, i)
		dst = appendFixed64F(dst, otlpwire.SummaryDataPointStartTimeUnixNano, r.start.Value(i))
		dst = appendFixed64F(dst, otlpwire.SummaryDataPointTimeUnixNano, r.time.Value(i))
		dst = appendFixed64F(dst, otlpwire.SummaryDataPointCount, r.count.Value(i))
		if !r.sum.IsNull(i) {
			dst = appendDouble(dst, otlpwire.SummaryDataPointSum, r.sum.Value(i))
		}
		from, to := r.quantiles.ValueOffsets(i)
		for j := int(from); j < int(to); j++ {
			qb, vb := math.Float64bits(r.qQuantile.Value(j)), math.Float64bits(r.qValue.Value(j))
			n := 0
			if qb != 0 {
				n += 9
			}
			if vb != 0 {
				n += 9
			}
			dst = append(otlpwire.AppendTag(dst, otlpwire.SummaryDataPointQuantileValues, otlpwire.WireLen), byte(n))
			dst = appendFixed64F(dst, otlpwire.SummaryDataPointValueAtQuantileQuantile, qb)
			dst = appendFixed64F(dst, otlpwire.SummaryDataPointValueAtQuantileValue, vb)
		}
		dst = appendVarintF(dst, otlpwire.SummaryDataPointFlags, uint64(r.flags.Value(i)))
	}
	dst = append(dst, r.extra.Value(i)...)
	return closeMsg(dst, ps, 2)
}

func appendBuckets(dst []byte, num otlpwire.FieldNum, offset *array.Int32, counts *array.List, values *array.Uint64, i int) []byte {
	if offset.IsNull(i) {
		return dst
	}
	dst, bs := openMsg(dst, num, 1)
	dst = appendVarintF(dst, otlpwire.ExponentialHistogramDataPointBucketsOffset, protowire.EncodeZigZag(int64(offset.Value(i))))
	from, to := counts.ValueOffsets(i)
	if to > from {
		vs := values.Uint64Values()[from:to]
		n := 0
		for _, v := range vs {
			n += protowire.SizeVarint(v)
		}
		dst = otlpwire.AppendTag(dst, otlpwire.ExponentialHistogramDataPointBucketsBucketCounts, otlpwire.WireLen)
		dst = protowire.AppendVarint(dst, uint64(n))
		for _, v := range vs {
			dst = protowire.AppendVarint(dst, v)
		}
	}
	return closeMsg(dst, bs, 1)
}

func (r *pointReader) appendExemplars(dst []byte, num otlpwire.FieldNum, i int) []byte {
	from, to := r.exemplars.ValueOffsets(i)
	for e := int(from); e < int(to); e++ {
		var es int
		dst, es = openMsg(dst, num, 1)
		dst = r.exAttrs.appendKVs(dst, otlpwire.ExemplarFilteredAttributes, e)
		dst = appendFixed64F(dst, otlpwire.ExemplarTimeUnixNano, r.exTime.Value(e))
		dst = appendOptDouble(dst, otlpwire.ExemplarAsDouble, r.exDouble, e)
		dst = appendOptInt64(dst, otlpwire.ExemplarAsInt, r.exInt, e)
		dst = appendBin(dst, otlpwire.ExemplarSpanID, r.exSpan.Value(e))
		dst = appendBin(dst, otlpwire.ExemplarTraceID, r.exTrace.Value(e))
		dst = closeMsg(dst, es, 1)
	}
	return dst
}
