package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/sluice-dev/sluice/internal/otlpwire"
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

// pointBuilder builds the data points table. The fixed-width and binary
// columns are batch columns (see colbuf.go), built at Build by newRecord;
// so are the offsets of the list columns, whose values go through Arrow
// builders.
type pointBuilder struct {
	rb                            *array.RecordBuilder
	resourceID, scopeID, metricID runCol[uint32]
	start, time                   runCol[uint64]
	attrs                         attrTable
	sets                          wireSets // numbers attrs' rows
	flags                         runCol[uint32]
	n                             int // rows
	exemplars                     listCol
	ex                            *array.StructBuilder
	exTime                        *array.Uint64Builder
	exInt                         *array.Int64Builder
	exDouble                      *array.Float64Builder
	exSpan, exTrace               *array.BinaryBuilder
	exAttrs                       attrBuilder
	intValue                      optCol[int64]
	doubleValue                   optCol[uint64] // float64 bits, as in the other float64 columns
	count                         runCol[uint64]
	sum, min, max                 optCol[uint64]
	bucketCounts                  listCol
	bucketCountsV                 *array.Uint64Builder
	bounds                        listCol
	boundsV                       *array.Float64Builder
	scale                         runCol[int32]
	zeroCount                     runCol[uint64]
	zeroThreshold                 runCol[uint64]
	posOffset, negOffset          optCol[int32]
	posCounts, negCounts          listCol
	posCountsV, negCountsV        *array.Uint64Builder
	quantiles                     listCol
	q                             *array.StructBuilder
	qQuantile, qValue             *array.Float64Builder
	extra                         binCol
}

func newPointBuilder(mem memory.Allocator, strict *bool) *pointBuilder {
	rb := array.NewRecordBuilder(mem, DataPointsSchema)
	typ := func(i int) arrow.DataType { return DataPointsSchema.Field(i).Type }
	p := &pointBuilder{rb: rb}
	p.resourceID = newRunCol[uint32](mem, typ(PtResourceID))
	p.scopeID = newRunCol[uint32](mem, typ(PtScopeID))
	p.metricID = newRunCol[uint32](mem, typ(PtMetricID))
	p.start = newRunCol[uint64](mem, typ(PtStartTimeUnixNano))
	p.time = newRunCol[uint64](mem, typ(PtTimeUnixNano))
	p.attrs = newAttrTable(strict, mem)
	p.flags = newRunCol[uint32](mem, typ(PtFlags))
	p.exemplars = newListCol(mem, rb.Field(PtExemplars), &p.n)
	p.ex = p.exemplars.vb.(*array.StructBuilder)
	p.exTime = p.ex.FieldBuilder(ExTimeUnixNano).(*array.Uint64Builder)
	p.exInt = p.ex.FieldBuilder(ExIntValue).(*array.Int64Builder)
	p.exDouble = p.ex.FieldBuilder(ExDoubleValue).(*array.Float64Builder)
	p.exSpan = p.ex.FieldBuilder(ExSpanID).(*array.BinaryBuilder)
	p.exTrace = p.ex.FieldBuilder(ExTraceID).(*array.BinaryBuilder)
	p.exAttrs = newAttrBuilder(p.ex.FieldBuilder(ExFilteredAttributes))
	p.intValue = newOptCol[int64](mem, typ(PtIntValue))
	p.doubleValue = newOptCol[uint64](mem, typ(PtDoubleValue))
	p.count = newRunCol[uint64](mem, typ(PtCount))
	p.sum = newOptCol[uint64](mem, typ(PtSum))
	p.min = newOptCol[uint64](mem, typ(PtMin))
	p.max = newOptCol[uint64](mem, typ(PtMax))
	p.bucketCounts = newListCol(mem, rb.Field(PtBucketCounts), &p.n)
	p.bucketCountsV = p.bucketCounts.vb.(*array.Uint64Builder)
	p.bounds = newListCol(mem, rb.Field(PtExplicitBounds), &p.n)
	p.boundsV = p.bounds.vb.(*array.Float64Builder)
	p.scale = newRunCol[int32](mem, typ(PtScale))
	p.zeroCount = newRunCol[uint64](mem, typ(PtZeroCount))
	p.zeroThreshold = newRunCol[uint64](mem, typ(PtZeroThreshold))
	p.posOffset = newOptCol[int32](mem, typ(PtPositiveOffset))
	p.posCounts = newListCol(mem, rb.Field(PtPositiveBucketCounts), &p.n)
	p.posCountsV = p.posCounts.vb.(*array.Uint64Builder)
	p.negOffset = newOptCol[int32](mem, typ(PtNegativeOffset))
	p.negCounts = newListCol(mem, rb.Field(PtNegativeBucketCounts), &p.n)
	p.negCountsV = p.negCounts.vb.(*array.Uint64Builder)
	p.quantiles = newListCol(mem, rb.Field(PtQuantileValues), &p.n)
	p.q = p.quantiles.vb.(*array.StructBuilder)
	p.qQuantile = p.q.FieldBuilder(0).(*array.Float64Builder)
	p.qValue = p.q.FieldBuilder(1).(*array.Float64Builder)
	p.extra = newBinCol(mem, typ(PtExtra))
	return p
}

// fillKindCols brings the columns that number points leave out (those of
// the histogram, exponential histogram and summary fields) to n rows, with
// zeros and nulls for the rows missing: what the number points would have
// added.
func (t *pointBuilder) fillKindCols(n int) {
	t.count.fill(n)
	t.sum.fill(n)
	t.min.fill(n)
	t.max.fill(n)
	t.scale.fill(n)
	t.zeroCount.fill(n)
	t.zeroThreshold.fill(n)
	t.posOffset.fill(n)
	t.negOffset.fill(n)
}

// columns are the columns built outside the record builder, all brought to
// the table's rows.
func (t *pointBuilder) columns() []subst {
	t.fillKindCols(t.n)
	return []subst{
		{PtResourceID, &t.resourceID}, {PtScopeID, &t.scopeID}, {PtMetricID, &t.metricID},
		{PtStartTimeUnixNano, &t.start}, {PtTimeUnixNano, &t.time}, {PtAttributes, &t.attrs},
		{PtFlags, &t.flags}, {PtIntValue, &t.intValue}, {PtDoubleValue, &t.doubleValue},
		{PtCount, &t.count}, {PtSum, &t.sum}, {PtMin, &t.min}, {PtMax, &t.max},
		{PtScale, &t.scale}, {PtZeroCount, &t.zeroCount}, {PtZeroThreshold, &t.zeroThreshold},
		{PtPositiveOffset, &t.posOffset}, {PtNegativeOffset, &t.negOffset}, {PtExtra, &t.extra},
		{PtExemplars, &t.exemplars}, {PtBucketCounts, &t.bucketCounts}, {PtExplicitBounds, &t.bounds},
		{PtPositiveBucketCounts, &t.posCounts}, {PtNegativeBucketCounts, &t.negCounts}, {PtQuantileValues, &t.quantiles},
	}
}

// metric decodes one Metric; its points go to the points table, then its row
// to the metrics table.
//
//	message Metric {
//	  string name = 1;
//	  string description = 2;
//	  string unit = 3;
//	  oneof data {
//	    Gauge gauge = 5;
//	    Sum sum = 7;
//	    Histogram histogram = 9;
//	    ExponentialHistogram exponential_histogram = 10;
//	    Summary summary = 11;
//	  }
//	  repeated KeyValue metadata = 12;
//	}
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
		f, code := otlpwire.ReadField(p, i)
		if code != otlpwire.ReadOK {
			return malformed("Metric", f.Num)
		}
		switch {
		case f.Num == otlpwire.MetricName && f.Type == otlpwire.WireLen:
			name = p[f.Val:f.End]
		case f.Num == otlpwire.MetricDescription && f.Type == otlpwire.WireLen:
			desc = p[f.Val:f.End]
		case f.Num == otlpwire.MetricUnit && f.Type == otlpwire.WireLen:
			unit = p[f.Val:f.End]
		case f.Num == otlpwire.MetricMetadata && f.Type == otlpwire.WireLen:
			if err := m.metadata.appendKV(p[f.Val:f.End]); err != nil {
				return err
			}
		case f.Type == otlpwire.WireLen && (f.Num == otlpwire.MetricGauge || f.Num == otlpwire.MetricSum ||
			f.Num == otlpwire.MetricHistogram || f.Num == otlpwire.MetricExponentialHistogram || f.Num == otlpwire.MetricSummary):
			k := metricKind(f.Num)
			if kind != MetricNone && kind != k {
				return unsupported("Metric holds more than one data kind;", f.Num)
			}
			kind = k
			if err := b.metricData(p[f.Val:f.End], kind, rid, sid, mid, &temporality, &monotonic); err != nil {
				return err
			}
		default:
			b.sxExtraMetric = append(b.sxExtraMetric, p[i:f.End]...)
		}
		i = f.End
	}
	if b.numbers != nil {
		if b.numberAt >= len(b.numbers) {
			return errors.New("AppendNumbers: more metrics in the request than lists of points")
		}
		pts := b.numbers[b.numberAt]
		b.numberAt++
		if len(pts) > 0 && kind != MetricGauge && kind != MetricSum {
			return fmt.Errorf("AppendNumbers: %d number points for a metric of kind %d", len(pts), kind)
		}
		for i := range pts {
			b.numberPoint(&pts[i], rid, sid, mid)
		}
	}
	if err := validString(name, "Metric", otlpwire.MetricName); err != nil {
		return err
	}
	if err := validString(desc, "Metric", otlpwire.MetricDescription); err != nil {
		return err
	}
	if err := validString(unit, "Metric", otlpwire.MetricUnit); err != nil {
		return err
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

// metricKind is the kind of the data message in Metric field num.
func metricKind(num otlpwire.FieldNum) uint8 {
	switch num {
	case otlpwire.MetricGauge:
		return MetricGauge
	case otlpwire.MetricSum:
		return MetricSum
	case otlpwire.MetricHistogram:
		return MetricHistogram
	case otlpwire.MetricExponentialHistogram:
		return MetricExponentialHistogram
	}
	return MetricSummary
}

// metricDataField is the Metric field of each metric kind's data message.
var metricDataField = [...]otlpwire.FieldNum{
	MetricGauge:                otlpwire.MetricGauge,
	MetricSum:                  otlpwire.MetricSum,
	MetricHistogram:            otlpwire.MetricHistogram,
	MetricExponentialHistogram: otlpwire.MetricExponentialHistogram,
	MetricSummary:              otlpwire.MetricSummary,
}

// metricData decodes a Gauge, Sum, Histogram, ExponentialHistogram or Summary.
//
//	message Sum {
//	  repeated NumberDataPoint data_points = 1;
//	  AggregationTemporality aggregation_temporality = 2;
//	  bool is_monotonic = 3;
//	}
//
// The other four have their own type of data points as field 1, Histogram
// and ExponentialHistogram also aggregation_temporality as field 2.
func (b *Builder) metricData(p []byte, kind uint8, rid, sid, mid uint32, temporality *int32, monotonic *bool) error {
	for i := 0; i < len(p); {
		f, code := otlpwire.ReadField(p, i)
		if code != otlpwire.ReadOK {
			return malformed("metric data", f.Num)
		}
		switch {
		case f.Num == otlpwire.DataPoints && f.Type == otlpwire.WireLen:
			if err := b.point(p[f.Val:f.End], kind, rid, sid, mid); err != nil {
				return err
			}
		case f.Num == otlpwire.DataAggregationTemporality && f.Type == otlpwire.WireVarint &&
			(kind == MetricSum || kind == MetricHistogram || kind == MetricExponentialHistogram):
			*temporality = int32(f.X)
		case f.Num == otlpwire.SumIsMonotonic && f.Type == otlpwire.WireVarint && kind == MetricSum:
			*monotonic = f.X != 0
		default:
			b.dataExtra = append(b.dataExtra, p[i:f.End]...)
		}
		i = f.End
	}
	return nil
}

// pointVals holds the scalar fields of a data point until its row is appended.
type pointVals struct {
	start, time, count, zeroCount uint64
	flags                         uint32
	scale                         int32
	intV                          int64
	doubleV, sum, min, max, zt    uint64 // float64 bits
	hasInt, hasDouble             bool
	hasSum, hasMin, hasMax        bool
	posParts, negParts            int
	posOffset, negOffset          int32
}

// point decodes a data point of any kind into one row: here the fields that
// all kinds have, the others in numberField, histField, expField or
// summaryField.
//
//	message NumberDataPoint {
//	  repeated KeyValue attributes = 7;
//	  fixed64 start_time_unix_nano = 2;
//	  fixed64 time_unix_nano = 3;
//	  repeated Exemplar exemplars = 5;
//	  uint32 flags = 8;
//	}
//
// The other kinds number start_time_unix_nano and time_unix_nano alike, but
// not the rest: HistogramDataPoint has attributes = 9, exemplars = 8, flags
// = 10; ExponentialHistogramDataPoint attributes = 1, exemplars = 11, flags
// = 10; SummaryDataPoint no exemplars.
func (b *Builder) point(p []byte, kind uint8, rid, sid, mid uint32) error {
	t := b.pts
	t.attrs.row(true)
	b.itemExtra = b.itemExtra[:0]
	var v pointVals
	// Field numbers differ between point kinds only for attributes,
	// exemplars and flags; the rest is shared or kind specific.
	attrsNum, exNum, flagsNum := otlpwire.NumberDataPointAttributes, otlpwire.NumberDataPointExemplars, otlpwire.NumberDataPointFlags
	switch kind {
	case MetricHistogram:
		attrsNum, exNum, flagsNum = otlpwire.HistogramDataPointAttributes, otlpwire.HistogramDataPointExemplars, otlpwire.HistogramDataPointFlags
	case MetricExponentialHistogram:
		attrsNum, exNum, flagsNum = otlpwire.ExponentialHistogramDataPointAttributes, otlpwire.ExponentialHistogramDataPointExemplars, otlpwire.ExponentialHistogramDataPointFlags
	case MetricSummary:
		attrsNum, exNum, flagsNum = otlpwire.SummaryDataPointAttributes, 0, otlpwire.SummaryDataPointFlags
	}
	attrTag := byte(attrsNum)<<3 | byte(otlpwire.WireLen)
	attrsRead := false // the point's attributes were read, as one run
	for i := 0; i < len(p); {
		if p[i] == attrTag {
			if attrsRead {
				t.sets.stop() // attributes in two runs: not numbered
			}
			attrsRead = true
			j, err := t.attrRow(p, i, attrTag)
			if err != nil {
				return err
			}
			if j > i {
				i = j
				continue
			}
		}
		// The fields of a point nearly all have a one-byte tag and are
		// fixed64 or short length-delimited (attributes): read those
		// here rather than in a call to ReadField, which reads them alike.
		var f otlpwire.Field
		switch c := p[i]; {
		case c&7 == byte(otlpwire.WireI64) && c >= 8 && c < 0x80 && len(p)-i >= 9:
			f = otlpwire.Field{Tag: otlpwire.Tag{Num: otlpwire.FieldNum(c >> 3), Type: otlpwire.WireI64},
				Val: i + 1, End: i + 9, X: binary.LittleEndian.Uint64(p[i+1 : i+9 : i+9])}
		case c&7 == byte(otlpwire.WireLen) && c >= 8 && c < 0x80 && i+1 < len(p) && p[i+1] < 0x80 && int(p[i+1]) <= len(p)-i-2:
			f = otlpwire.Field{Tag: otlpwire.Tag{Num: otlpwire.FieldNum(c >> 3), Type: otlpwire.WireLen},
				Val: i + 2, End: i + 2 + int(p[i+1])}
		default:
			var code otlpwire.ReadErr
			if f, code = otlpwire.ReadField(p, i); code != otlpwire.ReadOK {
				return malformed("data point", f.Num)
			}
		}
		ok := true
		switch {
		case f.Num == attrsNum && f.Type == otlpwire.WireLen:
			t.sets.stop()
			if err := t.attrs.appendKV(p[f.Val:f.End]); err != nil {
				return err
			}
		case f.Num == otlpwire.DataPointStartTimeUnixNano && f.Type == otlpwire.WireI64:
			v.start = f.X
		case f.Num == otlpwire.DataPointTimeUnixNano && f.Type == otlpwire.WireI64:
			v.time = f.X
		case f.Num == flagsNum && f.Type == otlpwire.WireVarint:
			v.flags = uint32(f.X)
		case f.Num == exNum && f.Type == otlpwire.WireLen:
			if err := b.exemplar(p[f.Val:f.End]); err != nil {
				return err
			}
		default:
			ok = false
		}
		if !ok {
			var err error
			switch kind {
			case MetricGauge, MetricSum:
				ok = numberField(&v, f)
			case MetricHistogram:
				ok, err = b.histField(&v, f, p)
			case MetricExponentialHistogram:
				ok, err = b.expField(&v, f, p)
			case MetricSummary:
				ok, err = b.summaryField(&v, f, p)
			}
			if err != nil {
				return err
			}
			if !ok {
				b.itemExtra = append(b.itemExtra, p[i:f.End]...)
			}
		}
		i = f.End
	}
	if !attrsRead {
		t.noAttrs()
	}
	t.resourceID.add(rid)
	t.scopeID.add(sid)
	t.metricID.add(mid)
	t.start.add(v.start)
	t.time.add(v.time)
	t.flags.add(v.flags)
	t.intValue.add(v.intV, v.hasInt)
	t.doubleValue.add(v.doubleV, v.hasDouble)
	if kind != MetricGauge && kind != MetricSum {
		// A number point leaves these zero and null: they are filled in
		// when a point of another kind follows, or at Build.
		t.fillKindCols(t.n)
		t.count.add(v.count)
		t.sum.add(v.sum, v.hasSum || kind == MetricSummary)
		t.min.add(v.min, v.hasMin)
		t.max.add(v.max, v.hasMax)
		t.scale.add(v.scale)
		t.zeroCount.add(v.zeroCount)
		t.zeroThreshold.add(v.zt)
		t.posOffset.add(v.posOffset, v.posParts > 0)
		t.negOffset.add(v.negOffset, v.negParts > 0)
	}
	t.extra.add(b.itemExtra)
	t.n++
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

// numberPoint appends a point AppendNumbers gives: the row point writes
// for such a point's encoding.
func (b *Builder) numberPoint(v *NumberPoint, rid, sid, mid uint32) {
	t := b.pts
	t.attrs.row(true)
	t.noAttrs()
	t.resourceID.add(rid)
	t.scopeID.add(sid)
	t.metricID.add(mid)
	t.start.add(v.Start)
	t.time.add(v.Time)
	t.flags.add(0)
	if v.IsInt {
		t.intValue.add(int64(v.Value), true)
		t.doubleValue.add(0, false)
	} else {
		t.intValue.add(0, false)
		t.doubleValue.add(v.Value, true)
	}
	t.extra.add(nil)
	t.n++
	b.items++
}

// numberField decodes the value oneof of a NumberDataPoint; the last member
// set wins, as in protobuf.
//
//	message NumberDataPoint {
//	  oneof value {
//	    double as_double = 4;
//	    sfixed64 as_int = 6;
//	  }
//	}
func numberField(v *pointVals, f otlpwire.Field) bool {
	switch {
	case f.Num == otlpwire.NumberDataPointAsDouble && f.Type == otlpwire.WireI64:
		v.doubleV, v.hasDouble, v.hasInt = f.X, true, false
	case f.Num == otlpwire.NumberDataPointAsInt && f.Type == otlpwire.WireI64:
		v.intV, v.hasInt, v.hasDouble = int64(f.X), true, false
	default:
		return false
	}
	return true
}

// histField decodes field f of a HistogramDataPoint, whose encoding is p.
//
//	message HistogramDataPoint {
//	  fixed64 count = 4;
//	  optional double sum = 5;
//	  repeated fixed64 bucket_counts = 6;
//	  repeated double explicit_bounds = 7;
//	  optional double min = 11;
//	  optional double max = 12;
//	}
func (b *Builder) histField(v *pointVals, f otlpwire.Field, p []byte) (bool, error) {
	t := b.pts
	switch {
	case f.Num == otlpwire.HistogramDataPointCount && f.Type == otlpwire.WireI64:
		v.count = f.X
	case f.Num == otlpwire.HistogramDataPointSum && f.Type == otlpwire.WireI64:
		v.sum, v.hasSum = f.X, true
	case f.Num == otlpwire.HistogramDataPointMin && f.Type == otlpwire.WireI64:
		v.min, v.hasMin = f.X, true
	case f.Num == otlpwire.HistogramDataPointMax && f.Type == otlpwire.WireI64:
		v.max, v.hasMax = f.X, true
	case f.Num == otlpwire.HistogramDataPointBucketCounts && f.Type == otlpwire.WireI64:
		t.bucketCounts.start(t.n)
		t.bucketCountsV.Append(f.X)
	case f.Num == otlpwire.HistogramDataPointBucketCounts && f.Type == otlpwire.WireLen:
		q := p[f.Val:f.End]
		if len(q)%8 != 0 {
			return false, malformed("HistogramDataPoint", f.Num)
		}
		t.bucketCounts.start(t.n)
		for j := 0; j < len(q); j += 8 {
			t.bucketCountsV.Append(binary.LittleEndian.Uint64(q[j:]))
		}
	case f.Num == otlpwire.HistogramDataPointExplicitBounds && f.Type == otlpwire.WireI64:
		t.bounds.start(t.n)
		t.boundsV.Append(math.Float64frombits(f.X))
	case f.Num == otlpwire.HistogramDataPointExplicitBounds && f.Type == otlpwire.WireLen:
		q := p[f.Val:f.End]
		if len(q)%8 != 0 {
			return false, malformed("HistogramDataPoint", f.Num)
		}
		t.bounds.start(t.n)
		for j := 0; j < len(q); j += 8 {
			t.boundsV.Append(math.Float64frombits(binary.LittleEndian.Uint64(q[j:])))
		}
	default:
		return false, nil
	}
	return true, nil
}

// expField decodes field f of an ExponentialHistogramDataPoint, whose
// encoding is p.
//
//	message ExponentialHistogramDataPoint {
//	  fixed64 count = 4;
//	  optional double sum = 5;
//	  sint32 scale = 6;
//	  fixed64 zero_count = 7;
//	  Buckets positive = 8;
//	  Buckets negative = 9;
//	  optional double min = 12;
//	  optional double max = 13;
//	  double zero_threshold = 14;
//	}
func (b *Builder) expField(v *pointVals, f otlpwire.Field, p []byte) (bool, error) {
	t := b.pts
	switch {
	case f.Num == otlpwire.ExponentialHistogramDataPointCount && f.Type == otlpwire.WireI64:
		v.count = f.X
	case f.Num == otlpwire.ExponentialHistogramDataPointSum && f.Type == otlpwire.WireI64:
		v.sum, v.hasSum = f.X, true
	case f.Num == otlpwire.ExponentialHistogramDataPointMin && f.Type == otlpwire.WireI64:
		v.min, v.hasMin = f.X, true
	case f.Num == otlpwire.ExponentialHistogramDataPointMax && f.Type == otlpwire.WireI64:
		v.max, v.hasMax = f.X, true
	case f.Num == otlpwire.ExponentialHistogramDataPointScale && f.Type == otlpwire.WireVarint:
		v.scale = sint32(f.X)
	case f.Num == otlpwire.ExponentialHistogramDataPointZeroCount && f.Type == otlpwire.WireI64:
		v.zeroCount = f.X
	case f.Num == otlpwire.ExponentialHistogramDataPointZeroThreshold && f.Type == otlpwire.WireI64:
		v.zt = f.X
	case f.Num == otlpwire.ExponentialHistogramDataPointPositive && f.Type == otlpwire.WireLen:
		v.posParts++
		t.posCounts.start(t.n)
		return true, buckets(p[f.Val:f.End], &v.posOffset, t.posCountsV)
	case f.Num == otlpwire.ExponentialHistogramDataPointNegative && f.Type == otlpwire.WireLen:
		v.negParts++
		t.negCounts.start(t.n)
		return true, buckets(p[f.Val:f.End], &v.negOffset, t.negCountsV)
	default:
		return false, nil
	}
	return true, nil
}

// buckets decodes ExponentialHistogramDataPoint.Buckets. Several occurrences
// merge: counts append, the last offset wins.
//
//	message Buckets {
//	  sint32 offset = 1;
//	  repeated uint64 bucket_counts = 2;
//	}
func buckets(p []byte, offset *int32, counts *array.Uint64Builder) error {
	for i := 0; i < len(p); {
		f, code := otlpwire.ReadField(p, i)
		if code != otlpwire.ReadOK {
			return malformed("Buckets", f.Num)
		}
		i = f.End
		switch {
		case f.Num == otlpwire.ExponentialHistogramDataPointBucketsOffset && f.Type == otlpwire.WireVarint:
			*offset = sint32(f.X)
		case f.Num == otlpwire.ExponentialHistogramDataPointBucketsBucketCounts && f.Type == otlpwire.WireVarint:
			counts.Append(f.X)
		case f.Num == otlpwire.ExponentialHistogramDataPointBucketsBucketCounts && f.Type == otlpwire.WireLen:
			q := p[:f.End]
			for j := f.Val; j < len(q); {
				c, end, ok := otlpwire.ReadVarint(q, j)
				if !ok {
					return malformed("Buckets", f.Num)
				}
				counts.Append(c)
				j = end
			}
		default:
			return unsupported("Buckets", f.Num)
		}
	}
	return nil
}

// summaryField decodes field f of a SummaryDataPoint, whose encoding is p.
//
//	message SummaryDataPoint {
//	  fixed64 count = 4;
//	  double sum = 5;
//	  repeated ValueAtQuantile quantile_values = 6;
//	}
//	message ValueAtQuantile {
//	  double quantile = 1;
//	  double value = 2;
//	}
func (b *Builder) summaryField(v *pointVals, f otlpwire.Field, p []byte) (bool, error) {
	t := b.pts
	switch {
	case f.Num == otlpwire.SummaryDataPointCount && f.Type == otlpwire.WireI64:
		v.count = f.X
	case f.Num == otlpwire.SummaryDataPointSum && f.Type == otlpwire.WireI64:
		v.sum = f.X
	case f.Num == otlpwire.SummaryDataPointQuantileValues && f.Type == otlpwire.WireLen:
		q := p[f.Val:f.End]
		var qv, vv float64
		for i := 0; i < len(q); {
			g, code := otlpwire.ReadField(q, i)
			if code != otlpwire.ReadOK {
				return false, malformed("ValueAtQuantile", g.Num)
			}
			i = g.End
			switch {
			case g.Num == otlpwire.SummaryDataPointValueAtQuantileQuantile && g.Type == otlpwire.WireI64:
				qv = math.Float64frombits(g.X)
			case g.Num == otlpwire.SummaryDataPointValueAtQuantileValue && g.Type == otlpwire.WireI64:
				vv = math.Float64frombits(g.X)
			default:
				return false, unsupported("ValueAtQuantile", g.Num)
			}
		}
		t.quantiles.start(t.n)
		t.q.Append(true)
		t.qQuantile.Append(qv)
		t.qValue.Append(vv)
	default:
		return false, nil
	}
	return true, nil
}

// exemplar decodes one Exemplar into the open exemplars list.
//
//	message Exemplar {
//	  repeated KeyValue filtered_attributes = 7;
//	  fixed64 time_unix_nano = 2;
//	  oneof value {
//	    double as_double = 3;
//	    sfixed64 as_int = 6;
//	  }
//	  bytes span_id = 4;
//	  bytes trace_id = 5;
//	}
func (b *Builder) exemplar(p []byte) error {
	t := b.pts
	t.exemplars.start(t.n)
	t.ex.Append(true)
	t.exAttrs.row(true)
	var tm uint64
	var iv int64
	var dv float64
	var hasInt, hasDouble bool
	var span, trace []byte
	for i := 0; i < len(p); {
		f, code := otlpwire.ReadField(p, i)
		if code != otlpwire.ReadOK {
			return malformed("Exemplar", f.Num)
		}
		i = f.End
		switch {
		case f.Num == otlpwire.ExemplarFilteredAttributes && f.Type == otlpwire.WireLen:
			if err := t.exAttrs.appendKV(p[f.Val:f.End]); err != nil {
				return err
			}
		case f.Num == otlpwire.ExemplarTimeUnixNano && f.Type == otlpwire.WireI64:
			tm = f.X
		case f.Num == otlpwire.ExemplarAsDouble && f.Type == otlpwire.WireI64:
			dv, hasDouble, hasInt = math.Float64frombits(f.X), true, false
		case f.Num == otlpwire.ExemplarAsInt && f.Type == otlpwire.WireI64:
			iv, hasInt, hasDouble = int64(f.X), true, false
		case f.Num == otlpwire.ExemplarSpanID && f.Type == otlpwire.WireLen:
			span = p[f.Val:f.End]
		case f.Num == otlpwire.ExemplarTraceID && f.Type == otlpwire.WireLen:
			trace = p[f.Val:f.End]
		default:
			return unsupported("Exemplar", f.Num)
		}
	}
	t.exTime.Append(tm)
	appendOptInt(t.exInt, iv, hasInt)
	appendOptFloat(t.exDouble, dv, hasDouble)
	t.exSpan.Append(span)
	t.exTrace.Append(trace)
	return nil
}

// release frees what the builder keeps outside its record builder.
func (t *pointBuilder) release() {
	for _, c := range []interface{ release() }{
		&t.resourceID, &t.scopeID, &t.metricID, &t.start, &t.time, &t.attrs, &t.flags,
		&t.intValue, &t.doubleValue, &t.count, &t.sum, &t.min, &t.max,
		&t.scale, &t.zeroCount, &t.zeroThreshold, &t.posOffset, &t.negOffset, &t.extra,
		&t.exemplars, &t.bucketCounts, &t.bounds, &t.posCounts, &t.negCounts, &t.quantiles,
	} {
		c.release()
	}
}

func (t *pointBuilder) flush() {
	t.exAttrs.flush()
}
