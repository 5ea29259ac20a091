package otlpwire

import (
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// TestFieldNums checks every constant of fields.go against the OTLP
// descriptors: its name is <Message><Field> of exactly one field, whose
// number it holds, and a message with one field named has all of them.
func TestFieldNums(t *testing.T) {
	consts := fieldNumConsts(t)
	if len(consts) < 100 {
		t.Fatalf("found %d constants in fields.go; is the parse wrong?", len(consts))
	}
	msgs := otlpMessages(t)
	named := map[protoreflect.MessageDescriptor]int{}
	for name, num := range consts {
		var found []protoreflect.FieldDescriptor
		for mname, md := range msgs {
			rest, ok := strings.CutPrefix(name, mname)
			if !ok {
				continue
			}
			fs := md.Fields()
			for i := range fs.Len() {
				if goName(string(fs.Get(i).Name())) == rest {
					found = append(found, fs.Get(i))
				}
			}
		}
		switch {
		case len(found) == 0:
			t.Errorf("%s names no OTLP field", name)
		case len(found) > 1:
			t.Errorf("%s names %d OTLP fields: %v", name, len(found), found)
		default:
			if FieldNum(found[0].Number()) != num {
				t.Errorf("%s = %d, but %s is field %d", name, num, found[0].FullName(), found[0].Number())
			}
			named[found[0].ContainingMessage()]++
		}
	}
	for md, n := range named {
		if n != md.Fields().Len() {
			t.Errorf("fields.go names %d of the %d fields of %s; keep each message complete", n, md.Fields().Len(), md.FullName())
		}
	}
}

// TestFieldNumsInOneFile keeps the exported field numbers in fields.go,
// where TestFieldNums sees them.
func TestFieldNumsInOneFile(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if name == "fields.go" || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "FieldNum" {
				for _, v := range vs.Names {
					if v.IsExported() {
						t.Errorf("%s: field number %s belongs in fields.go", fset.Position(v.Pos()), v.Name)
					}
				}
			}
			return true
		})
	}
}

// TestSignalsShareFieldNums checks that the signal-independent names of
// signal.go stand for the same number in every message they stand for.
func TestSignalsShareFieldNums(t *testing.T) {
	for _, c := range []struct {
		name string
		num  FieldNum
		all  []FieldNum
	}{
		{"RequestResourceX", RequestResourceX, []FieldNum{ExportMetricsServiceRequestResourceMetrics, ExportLogsServiceRequestResourceLogs, ExportTraceServiceRequestResourceSpans}},
		{"ResourceXResource", ResourceXResource, []FieldNum{ResourceMetricsResource, ResourceLogsResource, ResourceSpansResource}},
		{"ResourceXScopeX", ResourceXScopeX, []FieldNum{ResourceMetricsScopeMetrics, ResourceLogsScopeLogs, ResourceSpansScopeSpans}},
		{"ResourceXSchemaURL", ResourceXSchemaURL, []FieldNum{ResourceMetricsSchemaURL, ResourceLogsSchemaURL, ResourceSpansSchemaURL}},
		{"ScopeXScope", ScopeXScope, []FieldNum{ScopeMetricsScope, ScopeLogsScope, ScopeSpansScope}},
		{"ScopeXItems", ScopeXItems, []FieldNum{ScopeMetricsMetrics, ScopeLogsLogRecords, ScopeSpansSpans}},
		{"ScopeXSchemaURL", ScopeXSchemaURL, []FieldNum{ScopeMetricsSchemaURL, ScopeLogsSchemaURL, ScopeSpansSchemaURL}},
		{"DataPoints", DataPoints, []FieldNum{GaugeDataPoints, SumDataPoints, HistogramDataPoints, ExponentialHistogramDataPoints, SummaryDataPoints}},
		{"DataAggregationTemporality", DataAggregationTemporality, []FieldNum{SumAggregationTemporality, HistogramAggregationTemporality, ExponentialHistogramAggregationTemporality}},
		{"DataPointStartTimeUnixNano", DataPointStartTimeUnixNano, []FieldNum{NumberDataPointStartTimeUnixNano, HistogramDataPointStartTimeUnixNano, ExponentialHistogramDataPointStartTimeUnixNano, SummaryDataPointStartTimeUnixNano}},
		{"DataPointTimeUnixNano", DataPointTimeUnixNano, []FieldNum{NumberDataPointTimeUnixNano, HistogramDataPointTimeUnixNano, ExponentialHistogramDataPointTimeUnixNano, SummaryDataPointTimeUnixNano}},
	} {
		for _, n := range c.all {
			if n != c.num {
				t.Errorf("%s = %d, but the fields it stands for are %v", c.name, c.num, c.all)
				break
			}
		}
	}
}

// fieldNumConsts returns the constants of fields.go by name, as the compiler
// sees them.
func fieldNumConsts(t *testing.T) map[string]FieldNum {
	t.Helper()
	src, err := os.ReadFile("fields.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "fields.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	// fields.go imports nothing; FieldNum is the one name it needs.
	stub, err := parser.ParseFile(fset, "stub.go", "package otlpwire\ntype FieldNum uint32\n", 0)
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := (&types.Config{}).Check("otlpwire", fset, []*ast.File{f, stub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]FieldNum{}
	for _, name := range pkg.Scope().Names() {
		c, ok := pkg.Scope().Lookup(name).(*types.Const)
		if !ok {
			continue
		}
		if tn, ok := c.Type().(*types.Named); !ok || tn.Obj().Name() != "FieldNum" {
			t.Errorf("fields.go: %s is a %s, not a FieldNum", name, c.Type())
			continue
		}
		v, exact := constant.Uint64Val(c.Val())
		if !exact {
			t.Errorf("fields.go: %s = %s", name, c.Val())
		}
		out[name] = FieldNum(v)
	}
	return out
}

// otlpMessages returns the OTLP messages by the name fields.go gives them:
// their name in their package, with the names of the messages they are
// nested in in front (Span.Event is SpanEvent).
func otlpMessages(t *testing.T) map[string]protoreflect.MessageDescriptor {
	t.Helper()
	out := map[string]protoreflect.MessageDescriptor{}
	var add func(prefix string, ms protoreflect.MessageDescriptors)
	add = func(prefix string, ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			md := ms.Get(i)
			name := prefix + string(md.Name())
			if prev, dup := out[name]; dup {
				t.Errorf("%s and %s would both be %s", prev.FullName(), md.FullName(), name)
			}
			out[name] = md
			add(name, md.Messages())
		}
	}
	// request.go's imports register the collector packages and, through
	// them, every message they use.
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(string(fd.Package()), "opentelemetry.proto.") {
			add("", fd.Messages())
		}
		return true
	})
	if _, ok := out["ExportMetricsServiceRequest"]; !ok {
		t.Fatal("the OTLP descriptors are not registered")
	}
	return out
}

// goName is the Go spelling of a proto field name: trace_id is TraceID.
func goName(field string) string {
	var b strings.Builder
	for _, w := range strings.Split(field, "_") {
		switch w {
		case "id", "url":
			b.WriteString(strings.ToUpper(w))
		default:
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}
