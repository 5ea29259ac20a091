package columnar

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules"
)

// The reference: rules.Set.Apply on each item of the proto structs, slowly
// and obviously, with the output layout the Engine documents.

func kvMap(kvs []*common.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = fromProtoOrNil(kv.Value)
	}
	return m
}

func fromProtoOrNil(v *common.AnyValue) any {
	if v == nil {
		return nil
	}
	return fromProto(v)
}

func refValue(v any) *common.AnyValue {
	if v == nil {
		return nil
	}
	return toProto(v)
}

// refKVs rewrites orig after the rules left m: unchanged when m holds the
// same as orig; else surviving keys in their place, then new keys sorted.
func refKVs(orig []*common.KeyValue, m map[string]any) ([]*common.KeyValue, bool) {
	om := kvMap(orig)
	changed := len(om) != len(orig) || len(om) != len(m)
	for k, v := range om {
		if nv, ok := m[k]; !ok || !rules.SameValue(nv, v) {
			changed = true
		}
	}
	if !changed {
		return orig, false
	}
	var out []*common.KeyValue
	seen := map[string]bool{}
	for _, kv := range orig {
		if seen[kv.Key] {
			continue
		}
		seen[kv.Key] = true
		v, ok := m[kv.Key]
		if !ok {
			continue
		}
		if rules.SameValue(v, fromProtoOrNil(kv.Value)) {
			out = append(out, kv)
		} else {
			out = append(out, &common.KeyValue{Key: kv.Key, Value: refValue(v)})
		}
	}
	var extra []string
	for k := range m {
		if !seen[k] {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		out = append(out, &common.KeyValue{Key: k, Value: refValue(m[k])})
	}
	return out, true
}

// node is a resource, scope or metric of the output, in creation order.
type node struct {
	msg      proto.Message // a clone with its children cleared
	had      bool          // it had items in the input
	kept     int
	children []*node
	by       map[string]*node
	items    []proto.Message
}

func (n *node) child(key string, mk func() *node) *node {
	if n.by == nil {
		n.by = map[string]*node{}
	}
	c := n.by[key]
	if c == nil {
		c = mk()
		n.by[key] = c
		n.children = append(n.children, c)
	}
	return c
}

// alive: a node that had items and has none left goes.
func (n *node) alive() bool { return !n.had || n.kept > 0 }

type refItem struct {
	env      rules.Env
	common   *rules.Common
	attrs    *[]*common.KeyValue
	writeOut func() // writes the env's fields back to the item
}

type refResult struct {
	drop     bool
	resKVs   []*common.KeyValue
	resNew   bool
	metricNU [2]string
	mark     rules.Mark
}

func refApply(set *rules.Set, it refItem, resKVs []*common.KeyValue, resNil bool, scope rules.Scope) refResult {
	c := it.common
	c.Attributes = kvMap(*it.attrs)
	if !resNil {
		c.Resource = kvMap(resKVs)
	}
	c.Scope = scope
	res, _ := set.Apply(it.env)
	if res.Drop {
		return refResult{drop: true}
	}
	*it.attrs, _ = refKVs(*it.attrs, c.Attributes)
	it.writeOut()
	out := refResult{resKVs: resKVs, mark: res.Mark}
	if resNil && c.Resource != nil && len(c.Resource) > 0 {
		out.resKVs, out.resNew = refKVs(nil, c.Resource)
	} else if !resNil {
		out.resKVs, out.resNew = refKVs(resKVs, c.Resource)
	}
	return out
}

func resKey(ri int, kvs []*common.KeyValue) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&resource.Resource{Attributes: kvs})
	return fmt.Sprintf("n%d:%x", ri, b)
}

func hexID(b []byte) string { return hex.EncodeToString(b) }

// refMetrics applies set to a copy of req.
func refMetrics(set *rules.Set, req *colmetrics.ExportMetricsServiceRequest) *colmetrics.ExportMetricsServiceRequest {
	out, _ := refMetricsMarks(set, req)
	return out
}

// refMetricsMarks is refMetrics that also returns the rules' Mark of each
// kept point, in input order.
func refMetricsMarks(set *rules.Set, req *colmetrics.ExportMetricsServiceRequest) (*colmetrics.ExportMetricsServiceRequest, []rules.Mark) {
	var marks []rules.Mark
	req = proto.Clone(req).(*colmetrics.ExportMetricsServiceRequest)
	root := &node{}
	for ri, rm := range req.ResourceMetrics {
		rn := root.child(fmt.Sprint("o", ri), func() *node { return &node{msg: rm} })
		for si, sm := range rm.ScopeMetrics {
			sn := rn.child(fmt.Sprint("o", si), func() *node { return &node{msg: sm} })
			for mi, m := range sm.Metrics {
				mn := sn.child(fmt.Sprint("o", mi), func() *node { return &node{msg: m} })
				mn.had = otlpwire.PointCount(m) > 0
				sn.had = sn.had || mn.had
				rn.had = rn.had || mn.had
			}
		}
	}
	origRes := slices.Clone(root.children)
	for ri, rm := range req.ResourceMetrics {
		rn := origRes[ri]
		for si, sm := range rm.ScopeMetrics {
			for mi, m := range sm.Metrics {
				each := func(p proto.Message, attrs *[]*common.KeyValue, value float64) {
					env := &rules.MetricEnv{Name: m.Name, Unit: m.Unit, Type: metricTypeOf(m), Value: value}
					it := refItem{env: env, common: &env.Common, attrs: attrs, writeOut: func() {}}
					r := refApply(set, it, rm.GetResource().GetAttributes(), rm.Resource == nil, rules.Scope{Name: sm.GetScope().GetName(), Version: sm.GetScope().GetVersion()})
					if r.drop {
						return
					}
					marks = append(marks, r.mark)
					rn2 := rn
					if r.resNew {
						rn2 = root.child(resKey(ri, r.resKVs), func() *node {
							c := proto.Clone(rm).(*metrics.ResourceMetrics)
							c.ScopeMetrics = nil
							if c.Resource == nil {
								c.Resource = &resource.Resource{}
							}
							c.Resource.Attributes = r.resKVs
							return &node{msg: c}
						})
					}
					sn := rn2.child(fmt.Sprint("o", si), func() *node { return &node{msg: sm} })
					key := fmt.Sprint("o", mi)
					if env.Name != m.Name || env.Unit != m.Unit {
						key = fmt.Sprintf("n%d:%q:%q", mi, env.Name, env.Unit)
					}
					mn := sn.child(key, func() *node {
						c := proto.Clone(m).(*metrics.Metric)
						c.Name, c.Unit = env.Name, env.Unit
						return &node{msg: c}
					})
					rn2.kept++
					sn.kept++
					mn.kept++
					mn.items = append(mn.items, p)
				}
				switch d := m.Data.(type) {
				case *metrics.Metric_Gauge:
					for _, p := range d.Gauge.DataPoints {
						each(p, &p.Attributes, numberValue(p))
					}
				case *metrics.Metric_Sum:
					for _, p := range d.Sum.DataPoints {
						each(p, &p.Attributes, numberValue(p))
					}
				case *metrics.Metric_Histogram:
					for _, p := range d.Histogram.DataPoints {
						each(p, &p.Attributes, p.GetSum())
					}
				case *metrics.Metric_ExponentialHistogram:
					for _, p := range d.ExponentialHistogram.DataPoints {
						each(p, &p.Attributes, p.GetSum())
					}
				case *metrics.Metric_Summary:
					for _, p := range d.Summary.DataPoints {
						each(p, &p.Attributes, p.Sum)
					}
				}
			}
		}
	}
	out := &colmetrics.ExportMetricsServiceRequest{}
	for _, rn := range root.children {
		if !rn.alive() {
			continue
		}
		rm := proto.Clone(rn.msg).(*metrics.ResourceMetrics)
		rm.ScopeMetrics = nil
		for _, sn := range rn.children {
			if !sn.alive() {
				continue
			}
			sm := proto.Clone(sn.msg).(*metrics.ScopeMetrics)
			sm.Metrics = nil
			for _, mn := range sn.children {
				if !mn.alive() {
					continue
				}
				m := proto.Clone(mn.msg).(*metrics.Metric)
				setPoints(m, mn.items)
				sm.Metrics = append(sm.Metrics, m)
			}
			rm.ScopeMetrics = append(rm.ScopeMetrics, sm)
		}
		out.ResourceMetrics = append(out.ResourceMetrics, rm)
	}
	return out, marks
}

func setPoints(m *metrics.Metric, items []proto.Message) {
	switch d := m.Data.(type) {
	case *metrics.Metric_Gauge:
		d.Gauge.DataPoints = nil
		for _, p := range items {
			d.Gauge.DataPoints = append(d.Gauge.DataPoints, p.(*metrics.NumberDataPoint))
		}
	case *metrics.Metric_Sum:
		d.Sum.DataPoints = nil
		for _, p := range items {
			d.Sum.DataPoints = append(d.Sum.DataPoints, p.(*metrics.NumberDataPoint))
		}
	case *metrics.Metric_Histogram:
		d.Histogram.DataPoints = nil
		for _, p := range items {
			d.Histogram.DataPoints = append(d.Histogram.DataPoints, p.(*metrics.HistogramDataPoint))
		}
	case *metrics.Metric_ExponentialHistogram:
		d.ExponentialHistogram.DataPoints = nil
		for _, p := range items {
			d.ExponentialHistogram.DataPoints = append(d.ExponentialHistogram.DataPoints, p.(*metrics.ExponentialHistogramDataPoint))
		}
	case *metrics.Metric_Summary:
		d.Summary.DataPoints = nil
		for _, p := range items {
			d.Summary.DataPoints = append(d.Summary.DataPoints, p.(*metrics.SummaryDataPoint))
		}
	}
}

func numberValue(p *metrics.NumberDataPoint) float64 {
	switch v := p.Value.(type) {
	case *metrics.NumberDataPoint_AsDouble:
		return v.AsDouble
	case *metrics.NumberDataPoint_AsInt:
		return float64(v.AsInt)
	}
	return 0
}

func metricTypeOf(m *metrics.Metric) string {
	switch m.Data.(type) {
	case *metrics.Metric_Gauge:
		return "gauge"
	case *metrics.Metric_Sum:
		return "sum"
	case *metrics.Metric_Histogram:
		return "histogram"
	case *metrics.Metric_ExponentialHistogram:
		return "exponential_histogram"
	case *metrics.Metric_Summary:
		return "summary"
	}
	return ""
}

// refItems is refMetrics for logs and traces: resources holding scopes
// holding items.
func refItems[R, S, I proto.Message](set *rules.Set, res []R, scopes func(R) []S, resOf func(R) *resource.Resource,
	scope func(S) *common.InstrumentationScope, items func(S) []I,
	env func(I) refItem, build func(r R, s []S), fill func(s S, items []I), clearR func(R), clearS func(S)) []R {
	root := &node{}
	for ri, r := range res {
		rn := root.child(fmt.Sprint("o", ri), func() *node { return &node{msg: r} })
		for si, s := range scopes(r) {
			sn := rn.child(fmt.Sprint("o", si), func() *node { return &node{msg: s} })
			sn.had = len(items(s)) > 0
			rn.had = rn.had || sn.had
		}
	}
	origRes := slices.Clone(root.children)
	for ri, r := range res {
		rn := origRes[ri]
		for si, s := range scopes(r) {
			for _, item := range items(s) {
				it := env(item)
				rr := refApply(set, it, resOf(r).GetAttributes(), resOf(r) == nil,
					rules.Scope{Name: scope(s).GetName(), Version: scope(s).GetVersion()})
				if rr.drop {
					continue
				}
				rn2 := rn
				if rr.resNew {
					rn2 = root.child(resKey(ri, rr.resKVs), func() *node {
						c := proto.Clone(r).(R)
						clearR(c)
						rp := resOf(c)
						if rp == nil {
							rp = &resource.Resource{}
							proto.Merge(c, wrapResource(c, rp))
							rp = resOf(c)
						}
						rp.Attributes = rr.resKVs
						return &node{msg: c}
					})
				}
				sn := rn2.child(fmt.Sprint("o", si), func() *node { return &node{msg: s} })
				rn2.kept++
				sn.kept++
				sn.items = append(sn.items, item)
			}
		}
	}
	var out []R
	for _, rn := range root.children {
		if !rn.alive() {
			continue
		}
		r := proto.Clone(rn.msg).(R)
		clearR(r)
		var ss []S
		for _, sn := range rn.children {
			if !sn.alive() {
				continue
			}
			s := proto.Clone(sn.msg).(S)
			clearS(s)
			var its []I
			for _, i := range sn.items {
				its = append(its, i.(I))
			}
			fill(s, its)
			ss = append(ss, s)
		}
		build(r, ss)
		out = append(out, r)
	}
	return out
}

// wrapResource returns a message of r's type holding only rp as resource.
func wrapResource(r proto.Message, rp *resource.Resource) proto.Message {
	switch r.(type) {
	case *logs.ResourceLogs:
		return &logs.ResourceLogs{Resource: rp}
	case *trace.ResourceSpans:
		return &trace.ResourceSpans{Resource: rp}
	}
	panic("unknown resource type")
}

func refLogs(set *rules.Set, req *collogs.ExportLogsServiceRequest) *collogs.ExportLogsServiceRequest {
	req = proto.Clone(req).(*collogs.ExportLogsServiceRequest)
	out := refItems(set, req.ResourceLogs,
		func(r *logs.ResourceLogs) []*logs.ScopeLogs { return r.ScopeLogs },
		func(r *logs.ResourceLogs) *resource.Resource { return r.Resource },
		func(s *logs.ScopeLogs) *common.InstrumentationScope { return s.Scope },
		func(s *logs.ScopeLogs) []*logs.LogRecord { return s.LogRecords },
		func(l *logs.LogRecord) refItem {
			env := &rules.LogEnv{Body: fromProtoOrNil(l.Body), SeverityNumber: int(l.SeverityNumber), SeverityText: l.SeverityText,
				TraceID: hexID(l.TraceId), SpanID: hexID(l.SpanId)}
			return refItem{env: env, common: &env.Common, attrs: &l.Attributes, writeOut: func() {
				if !rules.SameValue(env.Body, fromProtoOrNil(l.Body)) {
					l.Body = refValue(env.Body)
				}
				l.SeverityNumber = logs.SeverityNumber(env.SeverityNumber)
				l.SeverityText = env.SeverityText
			}}
		},
		func(r *logs.ResourceLogs, s []*logs.ScopeLogs) { r.ScopeLogs = s },
		func(s *logs.ScopeLogs, items []*logs.LogRecord) { s.LogRecords = items },
		func(r *logs.ResourceLogs) { r.ScopeLogs = nil },
		func(s *logs.ScopeLogs) { s.LogRecords = nil })
	return &collogs.ExportLogsServiceRequest{ResourceLogs: out}
}

func refTraces(set *rules.Set, req *coltrace.ExportTraceServiceRequest) *coltrace.ExportTraceServiceRequest {
	req = proto.Clone(req).(*coltrace.ExportTraceServiceRequest)
	out := refItems(set, req.ResourceSpans,
		func(r *trace.ResourceSpans) []*trace.ScopeSpans { return r.ScopeSpans },
		func(r *trace.ResourceSpans) *resource.Resource { return r.Resource },
		func(s *trace.ScopeSpans) *common.InstrumentationScope { return s.Scope },
		func(s *trace.ScopeSpans) []*trace.Span { return s.Spans },
		func(sp *trace.Span) refItem {
			status := "unset"
			switch sp.GetStatus().GetCode() {
			case trace.Status_STATUS_CODE_OK:
				status = "ok"
			case trace.Status_STATUS_CODE_ERROR:
				status = "error"
			}
			kind := strings.ToLower(strings.TrimPrefix(sp.Kind.String(), "SPAN_KIND_"))
			if int(sp.Kind) > 5 || sp.Kind < 0 {
				kind = "unspecified"
			}
			env := &rules.SpanEnv{Name: sp.Name, Kind: kind, StatusCode: status, StatusMessage: sp.GetStatus().GetMessage(),
				DurationMs: float64(int64(sp.EndTimeUnixNano-sp.StartTimeUnixNano)) / 1e6,
				TraceID:    hexID(sp.TraceId), SpanID: hexID(sp.SpanId), ParentSpanID: hexID(sp.ParentSpanId)}
			return refItem{env: env, common: &env.Common, attrs: &sp.Attributes, writeOut: func() {
				sp.Name = env.Name
				if env.StatusMessage != sp.GetStatus().GetMessage() {
					if sp.Status == nil {
						sp.Status = &trace.Status{}
					}
					sp.Status.Message = env.StatusMessage
				}
			}}
		},
		func(r *trace.ResourceSpans, s []*trace.ScopeSpans) { r.ScopeSpans = s },
		func(s *trace.ScopeSpans, items []*trace.Span) { s.Spans = items },
		func(r *trace.ResourceSpans) { r.ScopeSpans = nil },
		func(s *trace.ScopeSpans) { s.Spans = nil })
	return &coltrace.ExportTraceServiceRequest{ResourceSpans: out}
}
