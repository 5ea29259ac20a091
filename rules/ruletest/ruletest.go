// Package ruletest runs the unit tests kept beside a rule directory: each
// test gives input telemetry (OTLP/JSON) and the output expected once the
// rules ran, and fails with a readable diff when they differ. It is
// `sluice rules test DIR`, and it runs the rules exactly as the worker
// does: OTLP → Arrow → rules → OTLP.
//
// Tests live in DIR/tests/*.yaml:
//
//	tests:
//	  - name: health checks are dropped
//	    signal: traces
//	    input:            # an Export*ServiceRequest in OTLP/JSON, written as YAML or JSON
//	      resourceSpans: [...]
//	    expect:           # the request after the rules; {} when everything is dropped
//	      resourceSpans: [...]
//	  - name: from files
//	    signal: logs
//	    input_file: logs-in.json     # relative to the tests directory
//	    expect_file: logs-out.json
package ruletest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-cmp/cmp"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpjson"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// Transform is the rule engine under test (what the worker runs).
type Transform interface {
	Apply(b *schemas.Batch) (*schemas.Batch, error)
}

// Test is one test case.
type Test struct {
	Name       string    `yaml:"name"`
	Signal     string    `yaml:"signal"`
	Input      yaml.Node `yaml:"input"`
	Expect     yaml.Node `yaml:"expect"`
	InputFile  string    `yaml:"input_file"`
	ExpectFile string    `yaml:"expect_file"`

	file string
	line int
}

type testFile struct {
	Tests []Test `yaml:"tests"`
}

// Summary counts the outcomes.
type Summary struct{ Passed, Failed int }

// Load reads every test file of dir/tests. A directory without tests is
// not an error.
func Load(dir string) ([]*Test, error) {
	tdir := filepath.Join(dir, "tests")
	names, _ := filepath.Glob(filepath.Join(tdir, "*.yaml"))
	more, _ := filepath.Glob(filepath.Join(tdir, "*.yml"))
	names = append(names, more...)
	slices.Sort(names)
	var out []*Test
	var errs []error
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		var tf testFile
		if cerrs := config.DecodeStrict(&root, "", &tf); len(cerrs) > 0 {
			for _, e := range cerrs {
				e.File = name
				errs = append(errs, e)
			}
			continue
		}
		seq := lookupTests(&root)
		for i := range tf.Tests {
			t := &tf.Tests[i]
			t.file = name
			if seq != nil && i < len(seq.Content) {
				t.line = seq.Content[i].Line
			}
			if t.Name == "" {
				errs = append(errs, fmt.Errorf("%s:%d: a test needs a name", name, t.line))
			}
			if _, err := otlpwire.ParseSignal(t.Signal); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: test %q: %v", name, t.line, t.Name, err))
			}
			out = append(out, t)
		}
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return out, nil
}

func lookupTests(root *yaml.Node) *yaml.Node {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "tests" {
			return n.Content[i+1]
		}
	}
	return nil
}

type multiErr []error

func (m multiErr) Error() string {
	s := make([]string, len(m))
	for i, e := range m {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

func joinErrors(errs []error) error { return multiErr(errs) }

// Run runs tests with tr and reports each to w: "ok" lines for passes, the
// reason and a diff (- expected, + got) for failures, and a closing
// "N passed, N failed" line.
func Run(tests []*Test, tr Transform, w io.Writer) Summary {
	var sum Summary
	for _, t := range tests {
		if err := t.run(tr); err != nil {
			sum.Failed++
			fmt.Fprintf(w, "FAIL %s:%d: %s\n%s\n", t.file, t.line, t.Name, indent(err.Error()))
			continue
		}
		sum.Passed++
		fmt.Fprintf(w, "ok   %s:%d: %s\n", t.file, t.line, t.Name)
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", sum.Passed, sum.Failed)
	return sum
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

func (t *Test) run(tr Transform) error {
	sig, _ := otlpwire.ParseSignal(t.Signal)
	in, err := t.request(sig, &t.Input, t.InputFile, "input")
	if err != nil {
		return err
	}
	want, err := t.request(sig, &t.Expect, t.ExpectFile, "expect")
	if err != nil {
		return err
	}
	b := schemas.NewBuilder(sig, nil)
	defer b.Release()
	if _, err := b.Append(in); err != nil {
		return fmt.Errorf("input: %w", err)
	}
	batch := b.Build()
	out, err := tr.Apply(batch)
	if err != nil {
		batch.Release()
		return fmt.Errorf("rules: %w", err)
	}
	if out != batch {
		batch.Release()
	}
	got, err := schemas.ToOTLP(out, nil)
	out.Release()
	if err != nil {
		return err
	}
	wm, gm := otlpwire.NewRequest(sig), otlpwire.NewRequest(sig)
	if err := proto.Unmarshal(want, wm); err != nil {
		return err
	}
	if err := proto.Unmarshal(got, gm); err != nil {
		return err
	}
	prune(wm)
	prune(gm)
	sortAttributes(wm.ProtoReflect())
	sortAttributes(gm.ProtoReflect())
	if proto.Equal(wm, gm) {
		return nil
	}
	wl, err := jsonLines(sig, wm)
	if err != nil {
		return err
	}
	gl, err := jsonLines(sig, gm)
	if err != nil {
		return err
	}
	return fmt.Errorf("output differs from expect (- expect, + got):\n%s", cmp.Diff(wl, gl, cmp.Comparer(func(a, b string) bool { return a == b })))
}

// jsonLines renders m as indented OTLP/JSON (ids in hex), line by line, for
// a diff people can read.
func jsonLines(sig otlpwire.Signal, m proto.Message) ([]string, error) {
	pb, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	js, err := otlpjson.MarshalRequest(sig, pb, nil)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, js, "", "  "); err != nil {
		return nil, err
	}
	return strings.Split(buf.String(), "\n"), nil
}

// request returns the OTLP protobuf of the inline node or the file.
func (t *Test) request(sig otlpwire.Signal, node *yaml.Node, file, what string) ([]byte, error) {
	var js []byte
	switch {
	case file != "" && node.Kind != 0:
		return nil, fmt.Errorf("%s: give %s or %s_file, not both", what, what, what)
	case file != "":
		data, err := os.ReadFile(filepath.Join(filepath.Dir(t.file), file))
		if err != nil {
			return nil, fmt.Errorf("%s_file: %w", what, err)
		}
		js = data
	case node.Kind == 0:
		return nil, fmt.Errorf("%s is missing", what)
	default:
		var v any
		if err := node.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s (line %d): %w", what, node.Line, err)
		}
		if s, ok := v.(string); ok { // JSON given as a string
			js = []byte(s)
		} else {
			var err error
			if js, err = json.Marshal(v); err != nil {
				return nil, fmt.Errorf("%s (line %d): %w", what, node.Line, err)
			}
		}
	}
	pb, err := otlpjson.UnmarshalRequest(sig, js, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: not an OTLP/JSON %s request: %w", what, sig, err)
	}
	return pb, nil
}

// prune removes scopes and resources left without items (and metrics
// without data points), which the rules may leave behind and which carry no
// telemetry.
func prune(m proto.Message) {
	switch r := m.(type) {
	case *colmetrics.ExportMetricsServiceRequest:
		r.ResourceMetrics = slices.DeleteFunc(r.ResourceMetrics, func(rm *metricsResource) bool {
			rm.ScopeMetrics = slices.DeleteFunc(rm.ScopeMetrics, func(sm *metricsScope) bool {
				sm.Metrics = slices.DeleteFunc(sm.Metrics, func(m *metricsMetric) bool { return otlpwire.PointCount(m) == 0 })
				return len(sm.Metrics) == 0
			})
			return len(rm.ScopeMetrics) == 0
		})
	case *collogs.ExportLogsServiceRequest:
		r.ResourceLogs = slices.DeleteFunc(r.ResourceLogs, func(rl *logsResource) bool {
			rl.ScopeLogs = slices.DeleteFunc(rl.ScopeLogs, func(sl *logsScope) bool { return len(sl.LogRecords) == 0 })
			return len(rl.ScopeLogs) == 0
		})
	case *coltrace.ExportTraceServiceRequest:
		r.ResourceSpans = slices.DeleteFunc(r.ResourceSpans, func(rs *traceResource) bool {
			rs.ScopeSpans = slices.DeleteFunc(rs.ScopeSpans, func(ss *traceScope) bool { return len(ss.Spans) == 0 })
			return len(rs.ScopeSpans) == 0
		})
	}
}

// sortAttributes orders every attribute list of m by key: attributes are a
// map in OTLP, so their order is not part of what a test checks.
func sortAttributes(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			if fd.Message().FullName() == "opentelemetry.proto.common.v1.KeyValue" {
				kvs := make([]protoreflect.Value, l.Len())
				for i := range kvs {
					kvs[i] = l.Get(i)
				}
				slices.SortStableFunc(kvs, func(a, b protoreflect.Value) int {
					return strings.Compare(a.Message().Interface().(*common.KeyValue).GetKey(), b.Message().Interface().(*common.KeyValue).GetKey())
				})
				for i, kv := range kvs {
					l.Set(i, kv)
				}
			}
			for i := 0; i < l.Len(); i++ {
				sortAttributes(l.Get(i).Message())
			}
		case fd.Message() != nil && !fd.IsMap():
			sortAttributes(v.Message())
		}
		return true
	})
}
