package columnar

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

// The reference: rules.Evaluator.Apply on each item of the proto structs,
// slowly and obviously, with the output layout the Engine documents. A
// request is one batch (rules.Evaluator.BeginBatch), of tenant "" unless
// said otherwise, as the Engine sees it.

// refBatch runs f with an Evaluator of set in a batch of tenant.
func refBatch(set *rules.Set, tenant string, f func(ev *rules.Evaluator)) {
	ev := set.NewEvaluator()
	ev.BeginBatch(tenant)
	f(ev)
	ev.EndBatch()
	ev.Flush()
}

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

func refApply(ev *rules.Evaluator, it refItem, resKVs []*common.KeyValue, resNil bool, scope rules.Scope) refResult {
	c := it.common
	c.Attributes = kvMap(*it.attrs)
	if !resNil {
		c.Resource = kvMap(resKVs)
	}
	c.Scope = scope
	res, _ := ev.Apply(it.env, rules.Keys{})
	if res.Drop {
		return refResult{drop: true}
	}
	if res.Changed { // else left as it is, repeated keys and all
		*it.attrs, _ = refKVs(*it.attrs, c.Attributes)
	}
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
func refMetricsMarks(set *rules.Set, req *colmetrics.ExportMetricsServiceRequest) (out *colmetrics.ExportMetricsServiceRequest, marks []rules.Mark) {
	refBatch(set, "", func(ev *rules.Evaluator) { out, marks = refMetricsEval(ev, req) })
	return out, marks
}

func refMetricsEval(ev *rules.Evaluator, req *colmetrics.ExportMetricsServiceRequest) (*colmetrics.ExportMetricsServiceRequest, []rules.Mark) {
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
					r := refApply(ev, it, rm.GetResource().GetAttributes(), rm.Resource == nil, rules.Scope{Name: sm.GetScope().GetName(), Version: sm.GetScope().GetVersion()})
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
func refItems[R, S, I proto.Message](ev *rules.Evaluator, res []R, scopes func(R) []S, resOf func(R) *resource.Resource,
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
				rr := refApply(ev, it, resOf(r).GetAttributes(), resOf(r) == nil,
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

func refLogs(set *rules.Set, req *collogs.ExportLogsServiceRequest) (out *collogs.ExportLogsServiceRequest) {
	refBatch(set, "", func(ev *rules.Evaluator) { out = refLogsEval(ev, req) })
	return out
}

func refLogsEval(ev *rules.Evaluator, req *collogs.ExportLogsServiceRequest) *collogs.ExportLogsServiceRequest {
	req = proto.Clone(req).(*collogs.ExportLogsServiceRequest)
	out := refItems(ev, req.ResourceLogs,
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

func refTraces(set *rules.Set, req *coltrace.ExportTraceServiceRequest) (out *coltrace.ExportTraceServiceRequest) {
	refBatch(set, "", func(ev *rules.Evaluator) { out = refTracesEval(ev, req) })
	return out
}

func refTracesEval(ev *rules.Evaluator, req *coltrace.ExportTraceServiceRequest) *coltrace.ExportTraceServiceRequest {
	req = proto.Clone(req).(*coltrace.ExportTraceServiceRequest)
	out := refItems(ev, req.ResourceSpans,
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

// referenceTenant is reference for a batch of tenant.
func referenceTenant(set *rules.Set, tenant string, req proto.Message) (out proto.Message) {
	refBatch(set, tenant, func(ev *rules.Evaluator) {
		switch r := req.(type) {
		case *colmetrics.ExportMetricsServiceRequest:
			out, _ = refMetricsEval(ev, r)
		case *collogs.ExportLogsServiceRequest:
			out = refLogsEval(ev, r)
		default:
			out = refTracesEval(ev, req.(*coltrace.ExportTraceServiceRequest))
		}
	})
	return out
}

// runEngineTenant is runEngine for a batch of tenant.
func runEngineTenant(t testing.TB, set *rules.Set, tenant string, req proto.Message) proto.Message {
	t.Helper()
	mem := memory.NewCheckedAllocator(testPool)
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	bl := schemas.NewBuilder(sigOf(req), mem)
	if _, err := bl.Append(body); err != nil {
		t.Fatal(err)
	}
	in := bl.Build()
	in.Tenant = tenant
	out, err := New(set, Options{Allocator: mem}).Apply(in)
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		in.Release()
	}
	enc, err := schemas.ToOTLP(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	out.Release()
	bl.Release()
	mem.AssertSize(t, 0)
	got := req.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(enc, got); err != nil {
		t.Fatal(err)
	}
	return got
}

// statefulPool: rules calling top_k and bucket, on every signal (they
// read attributes and the resource only).
var statefulPool = []string{
	`set:
      attributes["customer"]: top_k(attributes["customer"], 3)`,
	`when: '"size" in attributes'
    set:
      attributes["size.class"]: bucket(attributes["size"], [10, 100, 1000])`,
	`when: top_k(attributes["customer"], 2) != "other"
    set:
      attributes["top2"]: 'true'`,
	`on_error: drop
    set:
      attributes["s1"]: top_k(attributes["size"], 1)`,
	`set:
      attributes["svc"]: top_k(resource["service.name"], 1)`,
	`set:
      attributes["both"]: concat(top_k(attributes["customer"], 4), "/", bucket(attributes["size"], [-5, 0.5, 50]))`,
	`when: bucket(attributes["size"], [100]) == "<100" && top_k(attributes["customer"], 1) == "other"
    drop: true`,
	// A condition on the resource alone, which the Engine would evaluate
	// once per resource row if it were memoised.
	`when: top_k(resource["service.name"], 1) != "other"
    set:
      attributes["main.svc"]: 'true'`,
}

// statefulYAML picks 1 to 3 rules of statefulPool and up to 2 of
// rulePool[sig], in random order.
func statefulYAML(sig otlpwire.Signal, r *rand.Rand) string {
	var rs []string
	for _, i := range r.Perm(len(statefulPool))[:1+r.IntN(3)] {
		rs = append(rs, statefulPool[i])
	}
	for _, i := range r.Perm(len(rulePool[sig]))[:r.IntN(3)] {
		rs = append(rs, rulePool[sig][i])
	}
	r.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
	var b strings.Builder
	b.WriteString("rules:\n")
	for i, rule := range rs {
		fmt.Fprintf(&b, "  - name: r%d\n    signal: %s\n    %s\n", i, sig, rule)
	}
	return b.String()
}

// genStateful is gen with attributes for statefulPool: a skewed customer,
// a size of several types, and attribute sets repeated within the request
// (rows the Engine's memo replays).
func genStateful(sig otlpwire.Signal, r *rand.Rand) proto.Message {
	req := gen(sig, r)
	var seen [][]*common.KeyValue
	attrs := func() []*common.KeyValue {
		if len(seen) > 0 && r.IntN(2) == 0 {
			kvs := seen[r.IntN(len(seen))]
			out := make([]*common.KeyValue, len(kvs))
			for i, kv := range kvs {
				out[i] = proto.Clone(kv).(*common.KeyValue)
			}
			return out
		}
		var kvs []*common.KeyValue
		if r.IntN(8) != 0 {
			kvs = append(kvs, str("customer", fmt.Sprint("c", min(int(r.ExpFloat64()*2), 11))))
		}
		var size *common.AnyValue
		switch r.IntN(8) {
		case 0:
		case 1:
			size = sval("7")
		case 2:
			size = sval("x")
		case 3:
			size = &common.AnyValue{Value: &common.AnyValue_DoubleValue{DoubleValue: 0.5}}
		default:
			size = &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: []int64{5, 50, 500, 5000, -5}[r.IntN(5)]}}
		}
		if size != nil {
			kvs = append(kvs, &common.KeyValue{Key: "size", Value: size})
		}
		if r.IntN(3) == 0 {
			kvs = append(kvs, str("k0", []string{"a", "b"}[r.IntN(2)]))
		}
		seen = append(seen, kvs)
		return kvs
	}
	switch req := req.(type) {
	case *colmetrics.ExportMetricsServiceRequest:
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					switch d := m.Data.(type) {
					case *metrics.Metric_Gauge:
						for _, p := range d.Gauge.DataPoints {
							p.Attributes = attrs()
						}
					case *metrics.Metric_Sum:
						for _, p := range d.Sum.DataPoints {
							p.Attributes = attrs()
						}
					case *metrics.Metric_Histogram:
						for _, p := range d.Histogram.DataPoints {
							p.Attributes = attrs()
						}
					case *metrics.Metric_Summary:
						for _, p := range d.Summary.DataPoints {
							p.Attributes = attrs()
						}
					}
				}
			}
		}
	case *collogs.ExportLogsServiceRequest:
		for _, rl := range req.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				for _, l := range sl.LogRecords {
					l.Attributes = attrs()
				}
			}
		}
	case *coltrace.ExportTraceServiceRequest:
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					sp.Attributes = attrs()
				}
			}
		}
	}
	return req
}

// TestPropertyStateful compares the engine with the reference on rules
// calling top_k and bucket, over consecutive batches of several tenants:
// each engine has its own set (top_k's state lives in the set), and both
// must keep and fold the same values batch after batch, whatever rows the
// Engine's memo replays instead of running.
func TestPropertyStateful(t *testing.T) {
	n := 80
	if testing.Short() {
		n = 20
	}
	tenants := []string{"", "t1", "t2"}
	for seed := range n {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		sig := otlpwire.Signals[r.IntN(3)]
		y := statefulYAML(sig, r)
		eng, ref := parse(t, y), parse(t, y)
		for batch := range 8 {
			req := genStateful(sig, r)
			tenant := tenants[r.IntN(len(tenants))]
			got := runEngineTenant(t, eng, tenant, req)
			want := referenceTenant(ref, tenant, req)
			if !proto.Equal(got, want) {
				t.Fatalf("seed %d, batch %d (tenant %q): columnar and reference differ\nrules:\n%s\ngot:  %s\nwant: %s",
					seed, batch, tenant, y, prototext.Format(got), prototext.Format(want))
			}
		}
	}
}

// TestTopKMemoReplay: rows the Engine's memo replays count for top_k as if
// they ran. In batch 1 "y" comes first and is admitted (k = 1), but "x"
// is on three equal rows (one run, two replays) and so the most frequent:
// batch 2 keeps "x" and folds "y".
func TestTopKMemoReplay(t *testing.T) {
	set := parse(t, `rules:
  - name: top
    signal: metrics
    set:
      attributes["c"]: top_k(attributes["c"], 1)
`)
	req := func(cs ...string) *colmetrics.ExportMetricsServiceRequest {
		var pts []*metrics.NumberDataPoint
		for i, c := range cs {
			pts = append(pts, &metrics.NumberDataPoint{Attributes: []*common.KeyValue{str("c", c)}, TimeUnixNano: uint64(i)})
		}
		return &colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metrics.ResourceMetrics{{ScopeMetrics: []*metrics.ScopeMetrics{{
			Metrics: []*metrics.Metric{{Name: "m", Data: &metrics.Metric_Gauge{Gauge: &metrics.Gauge{DataPoints: pts}}}},
		}}}}}
	}
	values := func(m proto.Message) []string {
		var out []string
		for _, p := range m.(*colmetrics.ExportMetricsServiceRequest).ResourceMetrics[0].ScopeMetrics[0].Metrics[0].GetGauge().DataPoints {
			out = append(out, p.Attributes[0].Value.GetStringValue())
		}
		return out
	}
	for i, bt := range []struct{ in, want []string }{
		{[]string{"y", "z", "x", "x", "x"}, []string{"y", "other", "other", "other", "other"}},
		{[]string{"y", "x"}, []string{"other", "x"}},
	} {
		got := runEngineTenant(t, set, "", req(bt.in...))
		if !slices.Equal(values(got), bt.want) {
			t.Fatalf("batch %d: %v, want %v", i+1, values(got), bt.want)
		}
	}
}
