package schemas

import (
	"encoding/binary"
	"math"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

type metricBuilder struct {
	rb          *array.RecordBuilder
	n           uint32
	resourceID  *array.Uint32Builder
	scopeID     *array.Uint32Builder
	name        *array.StringBuilder
	description *array.StringBuilder
	unit        *array.StringBuilder
	typ         *array.Uint8Builder
	temporality *array.Int32Builder
	monotonic   *array.BooleanBuilder
	metadata    attrTable
	dataExtra   *array.BinaryBuilder
	extra       *array.BinaryBuilder
}

func newMetricBuilder(mem memory.Allocator, strict *bool) *metricBuilder {
	rb := array.NewRecordBuilder(mem, MetricsSchema)
	return &metricBuilder{
		rb:          rb,
		resourceID:  rb.Field(MetResourceID).(*array.Uint32Builder),
		scopeID:     rb.Field(MetScopeID).(*array.Uint32Builder),
		name:        rb.Field(MetName).(*array.StringBuilder),
		description: rb.Field(MetDescription).(*array.StringBuilder),
		unit:        rb.Field(MetUnit).(*array.StringBuilder),
		typ:         rb.Field(MetType).(*array.Uint8Builder),
		temporality: rb.Field(MetAggregationTemporality).(*array.Int32Builder),
		monotonic:   rb.Field(MetIsMonotonic).(*array.BooleanBuilder),
		metadata:    newAttrTable(strict, mem),
		dataExtra:   rb.Field(MetDataExtra).(*array.BinaryBuilder),
		extra:       rb.Field(MetExtra).(*array.BinaryBuilder),
	}
}

type pointBuilder struct {
	rb                            *array.RecordBuilder
	resourceID, scopeID, metricID bufCol[uint32]
	start, time                   bufCol[uint64]
	attrs                         attrTable
	flags                         bufCol[uint32]
	exemplars                     bufList
	ex                            *array.StructBuilder
	exTime                        *array.Uint64Builder
	exInt                         *array.Int64Builder
	exDouble                      *array.Float64Builder
	exSpan, exTrace               *array.BinaryBuilder
	exAttrs                       attrBuilder
	intValue                      bufOpt[int64]
	doubleValue                   bufOpt[float64]
	count                         bufCol[uint64]
	sum, min, max                 bufOpt[float64]
	bucketCounts                  bufList
	bucketCountsV                 *array.Uint64Builder
	bounds                        bufList
	boundsV                       *array.Float64Builder
	scale                         bufCol[int32]
	zeroCount                     bufCol[uint64]
	zeroThreshold                 bufCol[float64]
	posOffset, negOffset          bufOpt[int32]
	posCounts, negCounts          bufList
	posCountsV, negCountsV        *array.Uint64Builder
	quantiles                     bufList
	q                             *array.StructBuilder
	qQuantile, qValue             *array.Float64Builder
	extra                         bufBin
}

func newPointBuilder(mem memory.Allocator, strict *bool) *pointBuilder {
	rb := array.NewRecordBuilder(mem, DataPointsSchema)
	p := &pointBuilder{rb: rb}
	p.resourceID = newBufCol[uint32](rb.Field(PtResourceID))
	p.scopeID = newBufCol[uint32](rb.Field(PtScopeID))
	p.metricID = newBufCol[uint32](rb.Field(PtMetricID))
	p.start = newBufCol[uint64](rb.Field(PtStartTimeUnixNano))
	p.time = newBufCol[uint64](rb.Field(PtTimeUnixNano))
	p.attrs = newAttrTable(strict, mem)
	p.flags = newBufCol[uint32](rb.Field(PtFlags))
	p.exemplars = newBufList(rb.Field(PtExemplars))
	p.ex = p.exemplars.vb.(*array.StructBuilder)
	p.exTime = p.ex.FieldBuilder(ExTimeUnixNano).(*array.Uint64Builder)
	p.exInt = p.ex.FieldBuilder(ExIntValue).(*array.Int64Builder)
	p.exDouble = p.ex.FieldBuilder(ExDoubleValue).(*array.Float64Builder)
	p.exSpan = p.ex.FieldBuilder(ExSpanID).(*array.BinaryBuilder)
	p.exTrace = p.ex.FieldBuilder(ExTraceID).(*array.BinaryBuilder)
	p.exAttrs = newAttrBuilder(p.ex.FieldBuilder(ExFilteredAttributes))
	p.intValue = newBufOpt[int64](rb.Field(PtIntValue))
	p.doubleValue = newBufOpt[float64](rb.Field(PtDoubleValue))
	p.count = newBufCol[uint64](rb.Field(PtCount))
	p.sum = newBufOpt[float64](rb.Field(PtSum))
	p.min = newBufOpt[float64](rb.Field(PtMin))
	p.max = newBufOpt[float64](rb.Field(PtMax))
	p.bucketCounts = newBufList(rb.Field(PtBucketCounts))
	p.bucketCountsV = p.bucketCounts.vb.(*array.Uint64Builder)
	p.bounds = newBufList(rb.Field(PtExplicitBounds))
	p.boundsV = p.bounds.vb.(*array.Float64Builder)
	p.scale = newBufCol[int32](rb.Field(PtScale))
	p.zeroCount = newBufCol[uint64](rb.Field(PtZeroCount))
	p.zeroThreshold = newBufCol[float64](rb.Field(PtZeroThreshold))
	p.posOffset = newBufOpt[int32](rb.Field(PtPositiveOffset))
	p.posCounts = newBufList(rb.Field(PtPositiveBucketCounts))
	p.posCountsV = p.posCounts.vb.(*array.Uint64Builder)
	p.negOffset = newBufOpt[int32](rb.Field(PtNegativeOffset))
	p.negCounts = newBufList(rb.Field(PtNegativeBucketCounts))
	p.negCountsV = p.negCounts.vb.(*array.Uint64Builder)
	p.quantiles = newBufList(rb.Field(PtQuantileValues))
	p.q = p.quantiles.vb.(*array.StructBuilder)
	p.qQuantile = p.q.FieldBuilder(0).(*array.Float64Builder)
	p.qValue = p.q.FieldBuilder(1).(*array.Float64Builder)
	p.extra = newBufBin(rb.Field(PtExtra))
	return p
}

// metric decodes one Metric; its points go to the points table, then its row
// to the metrics table.
func (b *Builder) metric(p []byte, rid, sid uint32) error {
	m := b.met
	mid := m.n
	m.n++
	m.metadata.row(true)
	b.sxExtraMetric = b.sxExtraMetric[:0]
	b.dataExtra = b.dataExtra[:0]
	var name, desc, unit []byte
	var kind uint8
	var temporality int32
	var monotonic bool
	for i := 0; i < len(p); {
		num, typ, _, q, n := next(p[i:])
		if n < 0 {
			return malformed("Metric", num)
		}
		switch {
		case num == 1 && typ == wtLen:
			name = q
		case num == 2 && typ == wtLen:
			desc = q
		case num == 3 && typ == wtLen:
			unit = q
		case num == 12 && typ == wtLen:
			if err := m.metadata.appendKV(q); err != nil {
				return err
			}
		case typ == wtLen && (num == 5 || num == 7 || num == 9 || num == 10 || num == 11):
			k := metricKind(num)
			if kind != MetricNone && kind != k {
				return unsupported("Metric holds more than one data kind;", num)
			}
			kind = k
			if err := b.metricData(q, kind, rid, sid, mid, &temporality, &monotonic); err != nil {
				return err
			}
		default:
			b.sxExtraMetric = append(b.sxExtraMetric, p[i:i+n]...)
		}
		i += n
	}
	for j, s := range [][]byte{name, desc, unit} {
		if err := validString(s, "Metric", uint32(j+1)); err != nil {
			return err
		}
	}
	m.resourceID.Append(rid)
	m.scopeID.Append(sid)
	m.name.BinaryBuilder.Append(name)
	m.description.BinaryBuilder.Append(desc)
	m.unit.BinaryBuilder.Append(unit)
	m.typ.Append(kind)
	m.temporality.Append(temporality)
	m.monotonic.Append(monotonic)
	m.dataExtra.Append(b.dataExtra)
	m.extra.Append(b.sxExtraMetric)
	return nil
}

func metricKind(num uint32) uint8 {
	switch num {
	case 5:
		return MetricGauge
	case 7:
		return MetricSum
	case 9:
		return MetricHistogram
	case 10:
		return MetricExponentialHistogram
	}
	return MetricSummary
}

// metricDataField is the field number of each metric kind's data message.
var metricDataField = [...]uint32{MetricGauge: 5, MetricSum: 7, MetricHistogram: 9, MetricExponentialHistogram: 10, MetricSummary: 11}

// metricData decodes a Gauge, Sum, Histogram, ExponentialHistogram or Summary.
func (b *Builder) metricData(p []byte, kind uint8, rid, sid, mid uint32, temporality *int32, monotonic *bool) error {
	for i := 0; i < len(p); {
		num, typ, v, q, n := next(p[i:])
		if n < 0 {
			return malformed("metric data", num)
		}
		switch {
		case num == 1 && typ == wtLen:
			if err := b.point(q, kind, rid, sid, mid); err != nil {
				return err
			}
		case num == 2 && typ == wtVarint && (kind == MetricSum || kind == MetricHistogram || kind == MetricExponentialHistogram):
			*temporality = int32(v)
		case num == 3 && typ == wtVarint && kind == MetricSum:
			*monotonic = v != 0
		default:
			b.dataExtra = append(b.dataExtra, p[i:i+n]...)
		}
		i += n
	}
	return nil
}

// pointVals holds the scalar fields of a data point until its row is appended.
type pointVals struct {
	start, time, count, zeroCount uint64
	flags                         uint32
	scale                         int32
	intV                          int64
	doubleV, sum, min, max, zt    float64
	hasInt, hasDouble             bool
	hasSum, hasMin, hasMax        bool
	posParts, negParts            int
	posOffset, negOffset          int32
}

// point decodes a data point of any kind into one row.
func (b *Builder) point(p []byte, kind uint8, rid, sid, mid uint32) error {
	t := b.pts
	t.attrs.row(true)
	t.exemplars.open()
	t.bucketCounts.open()
	t.bounds.open()
	t.posCounts.open()
	t.negCounts.open()
	t.quantiles.open()
	b.itemExtra = b.itemExtra[:0]
	var v pointVals
	// Field numbers differ between point kinds only for attributes,
	// exemplars and flags; the rest is shared or kind specific.
	attrsNum, exNum, flagsNum := uint32(7), uint32(5), uint32(8)
	switch kind {
	case MetricHistogram:
		attrsNum, exNum, flagsNum = 9, 8, 10
	case MetricExponentialHistogram:
		attrsNum, exNum, flagsNum = 1, 11, 10
	case MetricSummary:
		exNum = 0
	}
	for i := 0; i < len(p); {
		num, typ, x, q, n := next(p[i:])
		if n < 0 {
			return malformed("data point", num)
		}
		ok := true
		switch {
		case num == attrsNum && typ == wtLen:
			if err := t.attrs.appendKV(q); err != nil {
				return err
			}
		case num == 2 && typ == wtI64:
			v.start = x
		case num == 3 && typ == wtI64:
			v.time = x
		case num == flagsNum && typ == wtVarint:
			v.flags = uint32(x)
		case num == exNum && typ == wtLen:
			if err := b.exemplar(q); err != nil {
				return err
			}
		default:
			ok = false
		}
		if !ok {
			var err error
			switch kind {
			case MetricGauge, MetricSum:
				ok = numberField(&v, num, typ, x)
			case MetricHistogram:
				ok, err = b.histField(&v, num, typ, x, q)
			case MetricExponentialHistogram:
				ok, err = b.expField(&v, num, typ, x, q)
			case MetricSummary:
				ok, err = b.summaryField(&v, num, typ, x, q)
			}
			if err != nil {
				return err
			}
			if !ok {
				b.itemExtra = append(b.itemExtra, p[i:i+n]...)
			}
		}
		i += n
	}
	t.resourceID.add(rid)
	t.scopeID.add(sid)
	t.metricID.add(mid)
	t.start.add(v.start)
	t.time.add(v.time)
	t.flags.add(v.flags)
	t.intValue.add(v.intV, v.hasInt)
	t.doubleValue.add(v.doubleV, v.hasDouble)
	t.count.add(v.count)
	t.sum.add(v.sum, v.hasSum || kind == MetricSummary)
	t.min.add(v.min, v.hasMin)
	t.max.add(v.max, v.hasMax)
	t.scale.add(v.scale)
	t.zeroCount.add(v.zeroCount)
	t.zeroThreshold.add(v.zt)
	t.posOffset.add(v.posOffset, v.posParts > 0)
	t.negOffset.add(v.negOffset, v.negParts > 0)
	t.extra.add(b.stable(b.itemExtra))
	b.items++
	return nil
}

func appendOptInt(b *array.Int64Builder, v int64, ok bool) {
	if ok {
		b.Append(v)
	} else {
		b.AppendNull()
	}
}

func appendOptInt32(b *array.Int32Builder, v int32, ok bool) {
	if ok {
		b.Append(v)
	} else {
		b.AppendNull()
	}
}

func appendOptFloat(b *array.Float64Builder, v float64, ok bool) {
	if ok {
		b.Append(v)
	} else {
		b.AppendNull()
	}
}

// numberField decodes the value oneof of a NumberDataPoint; the last member
// set wins, as in protobuf.
func numberField(v *pointVals, num uint32, typ uint8, x uint64) bool {
	switch {
	case num == 4 && typ == wtI64:
		v.doubleV, v.hasDouble, v.hasInt = math.Float64frombits(x), true, false
	case num == 6 && typ == wtI64:
		v.intV, v.hasInt, v.hasDouble = int64(x), true, false
	default:
		return false
	}
	return true
}

func (b *Builder) histField(v *pointVals, num uint32, typ uint8, x uint64, q []byte) (bool, error) {
	t := b.pts
	switch {
	case num == 4 && typ == wtI64:
		v.count = x
	case num == 5 && typ == wtI64:
		v.sum, v.hasSum = math.Float64frombits(x), true
	case num == 11 && typ == wtI64:
		v.min, v.hasMin = math.Float64frombits(x), true
	case num == 12 && typ == wtI64:
		v.max, v.hasMax = math.Float64frombits(x), true
	case num == 6 && typ == wtI64:
		t.bucketCountsV.Append(x)
	case num == 6 && typ == wtLen:
		if len(q)%8 != 0 {
			return false, malformed("HistogramDataPoint", num)
		}
		for j := 0; j < len(q); j += 8 {
			t.bucketCountsV.Append(binary.LittleEndian.Uint64(q[j:]))
		}
	case num == 7 && typ == wtI64:
		t.boundsV.Append(math.Float64frombits(x))
	case num == 7 && typ == wtLen:
		if len(q)%8 != 0 {
			return false, malformed("HistogramDataPoint", num)
		}
		for j := 0; j < len(q); j += 8 {
			t.boundsV.Append(math.Float64frombits(binary.LittleEndian.Uint64(q[j:])))
		}
	default:
		return false, nil
	}
	return true, nil
}

func (b *Builder) expField(v *pointVals, num uint32, typ uint8, x uint64, q []byte) (bool, error) {
	t := b.pts
	switch {
	case num == 4 && typ == wtI64:
		v.count = x
	case num == 5 && typ == wtI64:
		v.sum, v.hasSum = math.Float64frombits(x), true
	case num == 12 && typ == wtI64:
		v.min, v.hasMin = math.Float64frombits(x), true
	case num == 13 && typ == wtI64:
		v.max, v.hasMax = math.Float64frombits(x), true
	case num == 6 && typ == wtVarint:
		v.scale = sint32(x)
	case num == 7 && typ == wtI64:
		v.zeroCount = x
	case num == 14 && typ == wtI64:
		v.zt = math.Float64frombits(x)
	case num == 8 && typ == wtLen:
		v.posParts++
		return true, buckets(q, &v.posOffset, t.posCountsV)
	case num == 9 && typ == wtLen:
		v.negParts++
		return true, buckets(q, &v.negOffset, t.negCountsV)
	default:
		return false, nil
	}
	return true, nil
}

// buckets decodes ExponentialHistogramDataPoint.Buckets. Several occurrences
// merge: counts append, the last offset wins.
func buckets(p []byte, offset *int32, counts *array.Uint64Builder) error {
	for i := 0; i < len(p); {
		num, typ, x, q, n := next(p[i:])
		if n < 0 {
			return malformed("Buckets", num)
		}
		i += n
		switch {
		case num == 1 && typ == wtVarint:
			*offset = sint32(x)
		case num == 2 && typ == wtVarint:
			counts.Append(x)
		case num == 2 && typ == wtLen:
			for len(q) > 0 {
				c, k := uvarint(q)
				if k <= 0 {
					return malformed("Buckets", num)
				}
				counts.Append(c)
				q = q[k:]
			}
		default:
			return unsupported("Buckets", num)
		}
	}
	return nil
}

func (b *Builder) summaryField(v *pointVals, num uint32, typ uint8, x uint64, q []byte) (bool, error) {
	t := b.pts
	switch {
	case num == 4 && typ == wtI64:
		v.count = x
	case num == 5 && typ == wtI64:
		v.sum = math.Float64frombits(x)
	case num == 6 && typ == wtLen:
		var qv, vv float64
		for i := 0; i < len(q); {
			num, typ, x, _, n := next(q[i:])
			if n < 0 {
				return false, malformed("ValueAtQuantile", num)
			}
			i += n
			switch {
			case num == 1 && typ == wtI64:
				qv = math.Float64frombits(x)
			case num == 2 && typ == wtI64:
				vv = math.Float64frombits(x)
			default:
				return false, unsupported("ValueAtQuantile", num)
			}
		}
		t.q.Append(true)
		t.qQuantile.Append(qv)
		t.qValue.Append(vv)
	default:
		return false, nil
	}
	return true, nil
}

// exemplar decodes one Exemplar into the open exemplars list.
func (b *Builder) exemplar(p []byte) error {
	t := b.pts
	t.ex.Append(true)
	t.exAttrs.row(true)
	var tm uint64
	var iv int64
	var dv float64
	var hasInt, hasDouble bool
	var span, trace []byte
	for i := 0; i < len(p); {
		num, typ, x, q, n := next(p[i:])
		if n < 0 {
			return malformed("Exemplar", num)
		}
		i += n
		switch {
		case num == 7 && typ == wtLen:
			if err := t.exAttrs.appendKV(q); err != nil {
				return err
			}
		case num == 2 && typ == wtI64:
			tm = x
		case num == 3 && typ == wtI64:
			dv, hasDouble, hasInt = math.Float64frombits(x), true, false
		case num == 6 && typ == wtI64:
			iv, hasInt, hasDouble = int64(x), true, false
		case num == 4 && typ == wtLen:
			span = q
		case num == 5 && typ == wtLen:
			trace = q
		default:
			return unsupported("Exemplar", num)
		}
	}
	t.exTime.Append(tm)
	appendOptInt(t.exInt, iv, hasInt)
	appendOptFloat(t.exDouble, dv, hasDouble)
	t.exSpan.Append(span)
	t.exTrace.Append(trace)
	return nil
}

func (t *pointBuilder) flush() {
	t.attrs.flush()
	t.exAttrs.flush()
	t.resourceID.flush()
	t.scopeID.flush()
	t.metricID.flush()
	t.start.flush()
	t.time.flush()
	t.flags.flush()
	t.exemplars.flush()
	t.intValue.flush()
	t.doubleValue.flush()
	t.count.flush()
	t.sum.flush()
	t.min.flush()
	t.max.flush()
	t.bucketCounts.flush()
	t.bounds.flush()
	t.scale.flush()
	t.zeroCount.flush()
	t.zeroThreshold.flush()
	t.posOffset.flush()
	t.posCounts.flush()
	t.negOffset.flush()
	t.negCounts.flush()
	t.quantiles.flush()
	t.extra.flush()
}
