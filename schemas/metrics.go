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
	metadata    attrBuilder
	dataExtra   *array.BinaryBuilder
	extra       *array.BinaryBuilder
}

func newMetricBuilder(mem memory.Allocator) *metricBuilder {
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
		metadata:    newAttrBuilder(rb.Field(MetMetadata)),
		dataExtra:   rb.Field(MetDataExtra).(*array.BinaryBuilder),
		extra:       rb.Field(MetExtra).(*array.BinaryBuilder),
	}
}

type pointBuilder struct {
	rb                            *array.RecordBuilder
	resourceID, scopeID, metricID *array.Uint32Builder
	start, time                   *array.Uint64Builder
	attrs                         attrBuilder
	flags                         *array.Uint32Builder
	exemplars                     *array.ListBuilder
	ex                            *array.StructBuilder
	exTime                        *array.Uint64Builder
	exInt                         *array.Int64Builder
	exDouble                      *array.Float64Builder
	exSpan, exTrace               *array.BinaryBuilder
	exAttrs                       attrBuilder
	intValue                      *array.Int64Builder
	doubleValue                   *array.Float64Builder
	count                         *array.Uint64Builder
	sum, min, max                 *array.Float64Builder
	bucketCounts                  *array.ListBuilder
	bucketCountsV                 *array.Uint64Builder
	bounds                        *array.ListBuilder
	boundsV                       *array.Float64Builder
	scale                         *array.Int32Builder
	zeroCount                     *array.Uint64Builder
	zeroThreshold                 *array.Float64Builder
	posOffset, negOffset          *array.Int32Builder
	posCounts, negCounts          *array.ListBuilder
	posCountsV, negCountsV        *array.Uint64Builder
	quantiles                     *array.ListBuilder
	q                             *array.StructBuilder
	qQuantile, qValue             *array.Float64Builder
	extra                         *array.BinaryBuilder
}

func newPointBuilder(mem memory.Allocator) *pointBuilder {
	rb := array.NewRecordBuilder(mem, DataPointsSchema)
	p := &pointBuilder{rb: rb}
	p.resourceID = rb.Field(PtResourceID).(*array.Uint32Builder)
	p.scopeID = rb.Field(PtScopeID).(*array.Uint32Builder)
	p.metricID = rb.Field(PtMetricID).(*array.Uint32Builder)
	p.start = rb.Field(PtStartTimeUnixNano).(*array.Uint64Builder)
	p.time = rb.Field(PtTimeUnixNano).(*array.Uint64Builder)
	p.attrs = newAttrBuilder(rb.Field(PtAttributes))
	p.flags = rb.Field(PtFlags).(*array.Uint32Builder)
	p.exemplars = rb.Field(PtExemplars).(*array.ListBuilder)
	p.ex = p.exemplars.ValueBuilder().(*array.StructBuilder)
	p.exTime = p.ex.FieldBuilder(ExTimeUnixNano).(*array.Uint64Builder)
	p.exInt = p.ex.FieldBuilder(ExIntValue).(*array.Int64Builder)
	p.exDouble = p.ex.FieldBuilder(ExDoubleValue).(*array.Float64Builder)
	p.exSpan = p.ex.FieldBuilder(ExSpanID).(*array.BinaryBuilder)
	p.exTrace = p.ex.FieldBuilder(ExTraceID).(*array.BinaryBuilder)
	p.exAttrs = newAttrBuilder(p.ex.FieldBuilder(ExFilteredAttributes))
	p.intValue = rb.Field(PtIntValue).(*array.Int64Builder)
	p.doubleValue = rb.Field(PtDoubleValue).(*array.Float64Builder)
	p.count = rb.Field(PtCount).(*array.Uint64Builder)
	p.sum = rb.Field(PtSum).(*array.Float64Builder)
	p.min = rb.Field(PtMin).(*array.Float64Builder)
	p.max = rb.Field(PtMax).(*array.Float64Builder)
	p.bucketCounts = rb.Field(PtBucketCounts).(*array.ListBuilder)
	p.bucketCountsV = p.bucketCounts.ValueBuilder().(*array.Uint64Builder)
	p.bounds = rb.Field(PtExplicitBounds).(*array.ListBuilder)
	p.boundsV = p.bounds.ValueBuilder().(*array.Float64Builder)
	p.scale = rb.Field(PtScale).(*array.Int32Builder)
	p.zeroCount = rb.Field(PtZeroCount).(*array.Uint64Builder)
	p.zeroThreshold = rb.Field(PtZeroThreshold).(*array.Float64Builder)
	p.posOffset = rb.Field(PtPositiveOffset).(*array.Int32Builder)
	p.posCounts = rb.Field(PtPositiveBucketCounts).(*array.ListBuilder)
	p.posCountsV = p.posCounts.ValueBuilder().(*array.Uint64Builder)
	p.negOffset = rb.Field(PtNegativeOffset).(*array.Int32Builder)
	p.negCounts = rb.Field(PtNegativeBucketCounts).(*array.ListBuilder)
	p.negCountsV = p.negCounts.ValueBuilder().(*array.Uint64Builder)
	p.quantiles = rb.Field(PtQuantileValues).(*array.ListBuilder)
	p.q = p.quantiles.ValueBuilder().(*array.StructBuilder)
	p.qQuantile = p.q.FieldBuilder(0).(*array.Float64Builder)
	p.qValue = p.q.FieldBuilder(1).(*array.Float64Builder)
	p.extra = rb.Field(PtExtra).(*array.BinaryBuilder)
	return p
}

// metric decodes one Metric; its points go to the points table, then its row
// to the metrics table.
func (b *Builder) metric(p []byte, rid, sid uint32) error {
	m := b.met
	mid := m.n
	m.n++
	m.metadata.m.Append(true)
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
	t.attrs.m.Append(true)
	t.exemplars.Append(true)
	t.bucketCounts.Append(true)
	t.bounds.Append(true)
	t.posCounts.Append(true)
	t.negCounts.Append(true)
	t.quantiles.Append(true)
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
	t.resourceID.Append(rid)
	t.scopeID.Append(sid)
	t.metricID.Append(mid)
	t.start.Append(v.start)
	t.time.Append(v.time)
	t.flags.Append(v.flags)
	appendOptInt(t.intValue, v.intV, v.hasInt)
	appendOptFloat(t.doubleValue, v.doubleV, v.hasDouble)
	t.count.Append(v.count)
	appendOptFloat(t.sum, v.sum, v.hasSum || kind == MetricSummary)
	appendOptFloat(t.min, v.min, v.hasMin)
	appendOptFloat(t.max, v.max, v.hasMax)
	t.scale.Append(v.scale)
	t.zeroCount.Append(v.zeroCount)
	t.zeroThreshold.Append(v.zt)
	appendOptInt32(t.posOffset, v.posOffset, v.posParts > 0)
	appendOptInt32(t.negOffset, v.negOffset, v.negParts > 0)
	t.extra.Append(b.itemExtra)
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
	t.exAttrs.m.Append(true)
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
