package columnar

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

// metricFields reads the metric fields of points: name, unit, type from
// the metrics table, value from the point.
func (st *state) metricFields(it arrow.RecordBatch) (func(int) error, func(int, *patch), error) {
	mt := st.b.Metrics
	metricID, err := column[*array.Uint32](it, schemas.PtMetricID, "data_points")
	if err != nil {
		return nil, nil, err
	}
	name, err := column[*array.String](mt, schemas.MetName, "metrics")
	if err != nil {
		return nil, nil, err
	}
	unit, err := column[*array.String](mt, schemas.MetUnit, "metrics")
	if err != nil {
		return nil, nil, err
	}
	typ, err := column[*array.Uint8](mt, schemas.MetType, "metrics")
	if err != nil {
		return nil, nil, err
	}
	dv, err := column[*array.Float64](it, schemas.PtDoubleValue, "data_points")
	if err != nil {
		return nil, nil, err
	}
	iv, err := column[*array.Int64](it, schemas.PtIntValue, "data_points")
	if err != nil {
		return nil, nil, err
	}
	sum, err := column[*array.Float64](it, schemas.PtSum, "data_points")
	if err != nil {
		return nil, nil, err
	}
	nm := int(mt.NumRows())
	env := &st.menv
	fill := func(i int) error {
		m := int(metricID.Value(i))
		if m >= nm {
			return fmt.Errorf("%w: data point %d refers to metric %d of %d", schemas.ErrSchema, i, m, nm)
		}
		env.Name, env.Unit, env.Type = name.Value(m), unit.Value(m), metricType(typ.Value(m))
		switch {
		case dv.IsValid(i):
			env.Value = dv.Value(i)
		case iv.IsValid(i):
			env.Value = float64(iv.Value(i))
		case sum.IsValid(i):
			env.Value = sum.Value(i)
		default:
			env.Value = 0
		}
		return nil
	}
	diff := func(i int, p *patch) {
		m := int(metricID.Value(i))
		if env.Name != name.Value(m) || env.Unit != unit.Value(m) {
			p.what |= chMetric
			p.name, p.unit = env.Name, env.Unit
		}
	}
	return fill, diff, nil
}

func (st *state) logFields(it arrow.RecordBatch) (func(int) error, func(int, *patch), error) {
	sev, err := column[*array.Int32](it, schemas.LogSeverityNumber, "log_records")
	if err != nil {
		return nil, nil, err
	}
	sevText, err := column[*array.String](it, schemas.LogSeverityText, "log_records")
	if err != nil {
		return nil, nil, err
	}
	if int(it.NumCols()) <= schemas.LogBody {
		return nil, nil, fmt.Errorf("%w: log_records has no body", schemas.ErrSchema)
	}
	body, err := newAnyCols(it.Column(schemas.LogBody))
	if err != nil {
		return nil, nil, err
	}
	traceID, err := column[*array.Binary](it, schemas.LogTraceID, "log_records")
	if err != nil {
		return nil, nil, err
	}
	spanID, err := column[*array.Binary](it, schemas.LogSpanID, "log_records")
	if err != nil {
		return nil, nil, err
	}
	env := &st.lenv
	var origBody any
	fill := func(i int) error {
		origBody = body.value(i, &st.box)
		env.Body = origBody
		env.SeverityNumber = int(sev.Value(i))
		env.SeverityText = sevText.Value(i)
		env.TraceID = st.hexString(traceID.Value(i))
		env.SpanID = st.hexString(spanID.Value(i))
		return nil
	}
	diff := func(i int, p *patch) {
		if !rules.SameValue(env.Body, origBody) {
			p.what |= chBody
			p.body = env.Body
		}
		if env.SeverityNumber != int(sev.Value(i)) {
			p.what |= chSevNum
			p.sevNum = env.SeverityNumber
		}
		if env.SeverityText != sevText.Value(i) {
			p.what |= chText
			p.text = env.SeverityText
		}
	}
	return fill, diff, nil
}

func (st *state) spanFields(it arrow.RecordBatch) (func(int) error, func(int, *patch), error) {
	name, err := column[*array.String](it, schemas.SpanName, "spans")
	if err != nil {
		return nil, nil, err
	}
	kind, err := column[*array.Int32](it, schemas.SpanKind, "spans")
	if err != nil {
		return nil, nil, err
	}
	status, err := column[*array.Int32](it, schemas.SpanStatusCode, "spans")
	if err != nil {
		return nil, nil, err
	}
	msg, err := column[*array.String](it, schemas.SpanStatusMessage, "spans")
	if err != nil {
		return nil, nil, err
	}
	start, err := column[*array.Uint64](it, schemas.SpanStartTimeUnixNano, "spans")
	if err != nil {
		return nil, nil, err
	}
	end, err := column[*array.Uint64](it, schemas.SpanEndTimeUnixNano, "spans")
	if err != nil {
		return nil, nil, err
	}
	traceID, err := column[*array.Binary](it, schemas.SpanTraceID, "spans")
	if err != nil {
		return nil, nil, err
	}
	spanID, err := column[*array.Binary](it, schemas.SpanSpanID, "spans")
	if err != nil {
		return nil, nil, err
	}
	parent, err := column[*array.Binary](it, schemas.SpanParentSpanID, "spans")
	if err != nil {
		return nil, nil, err
	}
	env := &st.senv
	fill := func(i int) error {
		env.Name = name.Value(i)
		env.Kind = spanKind(kind.Value(i))
		env.StatusCode = statusCode(status, i)
		env.StatusMessage = msg.Value(i)
		env.DurationMs = durationMs(start.Value(i), end.Value(i))
		env.TraceID = st.hexString(traceID.Value(i))
		env.SpanID = st.hexString(spanID.Value(i))
		env.ParentSpanID = st.hexString(parent.Value(i))
		return nil
	}
	diff := func(i int, p *patch) {
		if env.Name != name.Value(i) {
			p.what |= chName
			p.name = env.Name
		}
		if env.StatusMessage != msg.Value(i) {
			p.what |= chText
			p.text = env.StatusMessage
		}
	}
	return fill, diff, nil
}

// durationMs is end - start in milliseconds; negative when a span ends
// before it starts.
func durationMs(start, end uint64) float64 { return float64(int64(end-start)) / 1e6 }
