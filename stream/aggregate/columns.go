package aggregate

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// attrCol is an attributes column (map<utf8, AnyValue>) with typed children.
type attrCol struct {
	m    *array.Map
	keys *array.String
	vals schemas.AnyColumns
}

func (a *attrCol) init(col arrow.Array) error {
	m, ok := col.(*array.Map)
	if !ok {
		return fmt.Errorf("%w: attributes column is %s", schemas.ErrSchema, col.DataType())
	}
	keys, ok := m.Keys().(*array.String)
	if !ok {
		return fmt.Errorf("%w: attribute keys are %s", schemas.ErrSchema, m.Keys().DataType())
	}
	vals, err := schemas.NewAnyColumns(m.Items())
	if err != nil {
		return err
	}
	*a = attrCol{m: m, keys: keys, vals: vals}
	return nil
}

// span is the range of entries of row i (empty when null).
func (a *attrCol) span(i int) (int, int) {
	if a.m.IsNull(i) {
		return 0, 0
	}
	s, e := a.m.ValueOffsets(i)
	return int(s), int(e)
}

// attrRow is the row of c.attrs that holds point row's attributes.
func (c *cols) attrRow(row int) int {
	if c.attrRows != nil {
		return int(c.attrRows[row])
	}
	return row
}

// cols are the typed columns of a metrics Batch.
type cols struct {
	// resources
	resAttrs    attrCol
	resDropped  *array.Uint32
	resSchema   *array.String
	resResExtra *array.Binary
	resExtra    *array.Binary
	// scopes
	scName, scVersion *array.String
	scAttrs           attrCol
	scDropped         *array.Uint32
	scSchema          *array.String
	scScopeExtra      *array.Binary
	scExtra           *array.Binary
	// metrics
	mRes, mScope        *array.Uint32
	mName, mDesc, mUnit *array.String
	mType               *array.Uint8
	mTemp               *array.Int32
	mMono               *array.Boolean
	mMeta               attrCol
	mDataExtra, mExtra  *array.Binary
	// points
	metricID               *array.Uint32
	start, time            *array.Uint64
	attrs                  attrCol  // the points' attributes, or the table of their sets (attrRows)
	attrRows               []uint32 // of a batch holding them by set: each point's row of attrs
	flags                  *array.Uint32
	intV                   *array.Int64
	dblV                   *array.Float64
	count, zeroCount       *array.Uint64
	sum, min, max, zt      *array.Float64
	buckets, bounds        *array.List
	bucketsV               *array.Uint64
	boundsV                *array.Float64
	scale, posOff, negOff  *array.Int32
	posCounts, negCounts   *array.List
	posCountsV, negCountsV *array.Uint64
	nRes, nScope, nMetrics int
	nPoints                int
}

type colErr struct{ err error }

func get[T arrow.Array](e *colErr, rec arrow.RecordBatch, i int, table string) T {
	var zero T
	if e.err != nil {
		return zero
	}
	if int(rec.NumCols()) <= i {
		e.err = fmt.Errorf("%w: %s table has %d columns", schemas.ErrSchema, table, rec.NumCols())
		return zero
	}
	t, ok := rec.Column(i).(T)
	if !ok {
		e.err = fmt.Errorf("%w: %s column %d is %s", schemas.ErrSchema, table, i, rec.Column(i).DataType())
	}
	return t
}

func (e *colErr) attrs(a *attrCol, rec arrow.RecordBatch, i int, table string) {
	if e.err != nil {
		return
	}
	if int(rec.NumCols()) <= i {
		e.err = fmt.Errorf("%w: %s table has %d columns", schemas.ErrSchema, table, rec.NumCols())
		return
	}
	e.err = a.init(rec.Column(i))
}

func listOf[T arrow.Array](e *colErr, l *array.List) T {
	var zero T
	if e.err != nil || l == nil {
		return zero
	}
	t, ok := l.ListValues().(T)
	if !ok {
		e.err = fmt.Errorf("%w: list of %s", schemas.ErrSchema, l.ListValues().DataType())
	}
	return t
}

// init reads the columns of b, which must be a metrics batch.
func (c *cols) init(b *schemas.Batch) error {
	if b == nil || b.Signal != otlpwire.Metrics || b.Resources == nil || b.Scopes == nil || b.Metrics == nil || b.Items == nil {
		return fmt.Errorf("%w: not a metrics batch", schemas.ErrSchema)
	}
	var e colErr
	r, s, m, p := b.Resources, b.Scopes, b.Metrics, b.Items
	e.attrs(&c.resAttrs, r, schemas.ResAttributes, "resources")
	c.resDropped = get[*array.Uint32](&e, r, schemas.ResDroppedAttributesCount, "resources")
	c.resSchema = get[*array.String](&e, r, schemas.ResSchemaURL, "resources")
	c.resResExtra = get[*array.Binary](&e, r, schemas.ResResourceExtra, "resources")
	c.resExtra = get[*array.Binary](&e, r, schemas.ResExtra, "resources")

	c.scName = get[*array.String](&e, s, schemas.ScopeName, "scopes")
	c.scVersion = get[*array.String](&e, s, schemas.ScopeVersion, "scopes")
	e.attrs(&c.scAttrs, s, schemas.ScopeAttributes, "scopes")
	c.scDropped = get[*array.Uint32](&e, s, schemas.ScopeDroppedAttributesCount, "scopes")
	c.scSchema = get[*array.String](&e, s, schemas.ScopeSchemaURL, "scopes")
	c.scScopeExtra = get[*array.Binary](&e, s, schemas.ScopeScopeExtra, "scopes")
	c.scExtra = get[*array.Binary](&e, s, schemas.ScopeExtra, "scopes")

	c.mRes = get[*array.Uint32](&e, m, schemas.MetResourceID, "metrics")
	c.mScope = get[*array.Uint32](&e, m, schemas.MetScopeID, "metrics")
	c.mName = get[*array.String](&e, m, schemas.MetName, "metrics")
	c.mDesc = get[*array.String](&e, m, schemas.MetDescription, "metrics")
	c.mUnit = get[*array.String](&e, m, schemas.MetUnit, "metrics")
	c.mType = get[*array.Uint8](&e, m, schemas.MetType, "metrics")
	c.mTemp = get[*array.Int32](&e, m, schemas.MetAggregationTemporality, "metrics")
	c.mMono = get[*array.Boolean](&e, m, schemas.MetIsMonotonic, "metrics")
	e.attrs(&c.mMeta, m, schemas.MetMetadata, "metrics")
	c.mDataExtra = get[*array.Binary](&e, m, schemas.MetDataExtra, "metrics")
	c.mExtra = get[*array.Binary](&e, m, schemas.MetExtra, "metrics")

	c.metricID = get[*array.Uint32](&e, p, schemas.PtMetricID, "data_points")
	c.start = get[*array.Uint64](&e, p, schemas.PtStartTimeUnixNano, "data_points")
	c.time = get[*array.Uint64](&e, p, schemas.PtTimeUnixNano, "data_points")
	c.attrRows = nil
	if t := b.ItemAttrSetTable; t != nil {
		c.attrRows = b.ItemAttrSets
		if e.err == nil {
			e.err = c.attrs.init(t)
		}
	} else {
		e.attrs(&c.attrs, p, schemas.PtAttributes, "data_points")
	}
	c.flags = get[*array.Uint32](&e, p, schemas.PtFlags, "data_points")
	c.intV = get[*array.Int64](&e, p, schemas.PtIntValue, "data_points")
	c.dblV = get[*array.Float64](&e, p, schemas.PtDoubleValue, "data_points")
	c.count = get[*array.Uint64](&e, p, schemas.PtCount, "data_points")
	c.sum = get[*array.Float64](&e, p, schemas.PtSum, "data_points")
	c.min = get[*array.Float64](&e, p, schemas.PtMin, "data_points")
	c.max = get[*array.Float64](&e, p, schemas.PtMax, "data_points")
	c.buckets = get[*array.List](&e, p, schemas.PtBucketCounts, "data_points")
	c.bounds = get[*array.List](&e, p, schemas.PtExplicitBounds, "data_points")
	c.scale = get[*array.Int32](&e, p, schemas.PtScale, "data_points")
	c.zeroCount = get[*array.Uint64](&e, p, schemas.PtZeroCount, "data_points")
	c.zt = get[*array.Float64](&e, p, schemas.PtZeroThreshold, "data_points")
	c.posOff = get[*array.Int32](&e, p, schemas.PtPositiveOffset, "data_points")
	c.posCounts = get[*array.List](&e, p, schemas.PtPositiveBucketCounts, "data_points")
	c.negOff = get[*array.Int32](&e, p, schemas.PtNegativeOffset, "data_points")
	c.negCounts = get[*array.List](&e, p, schemas.PtNegativeBucketCounts, "data_points")
	c.bucketsV = listOf[*array.Uint64](&e, c.buckets)
	c.boundsV = listOf[*array.Float64](&e, c.bounds)
	c.posCountsV = listOf[*array.Uint64](&e, c.posCounts)
	c.negCountsV = listOf[*array.Uint64](&e, c.negCounts)
	if e.err != nil {
		return e.err
	}
	c.nRes, c.nScope, c.nMetrics, c.nPoints = int(r.NumRows()), int(s.NumRows()), int(m.NumRows()), int(p.NumRows())
	// Parent ids are row numbers; check them once so the hot loops need not.
	for i := 0; i < c.nMetrics; i++ {
		if int(c.mRes.Value(i)) >= c.nRes || int(c.mScope.Value(i)) >= c.nScope {
			return fmt.Errorf("%w: metric %d refers to a missing resource or scope", schemas.ErrSchema, i)
		}
	}
	for i := 0; i < c.nPoints; i++ {
		if int(c.metricID.Value(i)) >= c.nMetrics {
			return fmt.Errorf("%w: point %d refers to a missing metric", schemas.ErrSchema, i)
		}
	}
	if b.ItemAttrSetTable != nil {
		if len(c.attrRows) != c.nPoints {
			return fmt.Errorf("%w: %d attribute sets for %d points", schemas.ErrSchema, len(c.attrRows), c.nPoints)
		}
		for i, r := range c.attrRows {
			if int(r) >= c.attrs.m.Len() {
				return fmt.Errorf("%w: point %d has attribute set %d of %d", schemas.ErrSchema, i, r, c.attrs.m.Len())
			}
		}
	}
	return nil
}

// listSpan returns the range of row i of a list column in its values.
func listSpan(l *array.List, i int) (int, int) {
	s, e := l.ValueOffsets(i)
	return int(s), int(e)
}
