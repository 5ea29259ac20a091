package columnar

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// dupAttrs gives every item of req one of k attribute sets, so that many
// items share their attributes and the row memo hits.
func dupAttrs(req proto.Message, r *rand.Rand, k int) {
	pool := make([][]*common.KeyValue, k)
	for i := range pool {
		pool[i] = genAttrs(r)
	}
	eachItemAttrs(req, func(l protoreflect.List) {
		l.Truncate(0)
		for _, kv := range pool[r.IntN(k)] {
			l.Append(protoreflect.ValueOfMessage(proto.Clone(kv).ProtoReflect()))
		}
	})
}

// eachItemAttrs calls f with the attribute list of every item of req (data
// point, log record, span), in the order of the request.
func eachItemAttrs(req proto.Message, f func(protoreflect.List)) {
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if fd := m.Descriptor().Fields().ByName("attributes"); fd != nil && fd.IsList() {
			switch m.Descriptor().Name() {
			case "NumberDataPoint", "HistogramDataPoint", "ExponentialHistogramDataPoint", "SummaryDataPoint", "LogRecord", "Span":
				f(m.Mutable(fd).List())
				return
			}
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.Message() != nil && !fd.IsMap():
				walk(v.Message())
			}
			return true
		})
	}
	walk(req.ProtoReflect())
}

// TestMemo: rules applied once per distinct attribute row give what the
// reference gives, including rules that read other parts of the item
// (which must not be memoised) and the resource or scope.
func TestMemo(t *testing.T) {
	extra := map[otlpwire.Signal][]string{
		otlpwire.Metrics: {
			`set:
      attributes["n"]: name`,
			`set:
      attributes["v"]: value`,
			`set:
      attributes["svc"]: resource["service.name"]`,
			`set:
      attributes["sc"]: scope.name`,
			`when: attributes["k0"] == "a"
    set:
      attributes["route"]: replace_regex(attributes["route"], "/[0-9]+", "/{id}")
      resource["r"]: attributes["k1"]`,
		},
		otlpwire.Logs: {
			`set:
      attributes["sev"]: severity_text`,
			`when: attributes["k0"] == "a"
    set:
      attributes["svc"]: resource["service.name"]`,
			`when: severity_number < 9
    drop: true`,
			`when: severity_text == "WARN" || severity_number > 12
    set:
      attributes["sev"]: string(severity_number) + severity_text`,
		},
		otlpwire.Traces: {
			`set:
      attributes["n"]: name`,
			`when: kind == "server" && status_code != "error"
    set:
      attributes["st"]: status_code + status_message`,
			`when: attributes["k1"] == "b"
    set:
      attributes["sc"]: concat(scope.name, resource["service.name"])`,
		},
	}
	for _, sig := range otlpwire.Signals {
		pool := append(append([]string(nil), rulePool[sig]...), extra[sig]...)
		for i := range pool {
			for seed := range 3 {
				r := rand.New(rand.NewPCG(uint64(seed), uint64(i)+7))
				req := gen(sig, r)
				dupAttrs(req, r, 1+seed*2)
				set := parse(t, ruleYAMLFrom(sig, pool, []int{i}))
				check(t, set, req)
			}
		}
		for seed := range 40 {
			r := rand.New(rand.NewPCG(uint64(seed), 123))
			idx := r.Perm(len(pool))[:1+r.IntN(min(4, len(pool)))]
			set := parse(t, ruleYAMLFrom(sig, pool, idx))
			req := gen(sig, r)
			dupAttrs(req, r, 1+r.IntN(4))
			check(t, set, req)
		}
	}
}

func TestMemoEligible(t *testing.T) {
	for y, want := range map[string]bool{
		"    set:\n      attributes[\"a\"]: attributes[\"b\"]\n": true,
		"    set:\n      attributes[\"a\"]: resource[\"b\"]\n":   true,
		"    set:\n      attributes[\"a\"]: name\n":              true, // keyed by the metric
		"    set:\n      attributes[\"a\"]: string(value)\n":     false,
		"    set:\n      attributes[\"a\"]: string(now())\n":     false,
		"    set:\n      name: attributes[\"b\"]\n":              false,
		"    sample: 0.5\n":                                      false,
		"    when: value > 1\n    drop: true\n":                  false,
		"    when: attributes[\"x\"] == \"y\"\n    drop: true\n": true,
		"    delete: ['attributes[\"a\"]']\n":                    true,
	} {
		set := parse(t, "rules:\n  - name: a\n    signal: metrics\n"+y)
		if got := New(set, Options{}).sigs[0].memo; got != want {
			t.Errorf("%q: memo = %v, want %v", y, got, want)
		}
	}
}

// TestMemoFields: rules that read low-cardinality fields are memoised by
// those fields; others, and rules that write fields, are not.
func TestMemoFields(t *testing.T) {
	for _, tt := range []struct {
		sig  otlpwire.Signal
		y    string
		want []string
	}{
		{otlpwire.Logs, "    when: severity_number < 9\n    drop: true\n", []string{"severity_number"}},
		{otlpwire.Logs, "    when: severity_text == \"x\" && attributes[\"a\"] == 1\n    drop: true\n", []string{"severity_text"}},
		{otlpwire.Logs, "    when: body == \"x\"\n    drop: true\n", nil},
		{otlpwire.Logs, "    when: severity_number < 9\n    set:\n      severity_text: '\"x\"'\n", nil},
		{otlpwire.Logs, "    when: severity_number < now().Hour()\n    drop: true\n", nil},
		{otlpwire.Logs, "    when: severity_number < 9\n    sample: 0.5\n", nil},
		{otlpwire.Traces, "    when: kind == \"server\" && status_code == \"error\"\n    drop: true\n", []string{"kind", "status_code"}},
		{otlpwire.Traces, "    when: duration_ms > 5\n    drop: true\n", nil},
	} {
		set := parse(t, "rules:\n  - name: a\n    signal: "+tt.sig.String()+"\n"+tt.y)
		info := New(set, Options{}).sigs[tt.sig]
		if info.memo != (tt.want != nil) || !slices.Equal(info.fields, tt.want) {
			t.Errorf("%q: memo = %v, fields %q; want fields %q", tt.y, info.memo, info.fields, tt.want)
		}
	}
}

func ruleYAMLFrom(sig otlpwire.Signal, pool []string, idx []int) string {
	saved := rulePool[sig]
	rulePool[sig] = pool
	defer func() { rulePool[sig] = saved }()
	return ruleYAML(sig, idx)
}

// TestMemoPredicted: a row equal to the row before it hits that row's
// entry without a lookup, and only when it is equal in every part of the
// key: rows 0-2 and 3-4 have equal attributes, but the rule reads the
// resource, which rows 2 and 3 do not share; rows 5 and 6 differ in k.
func TestMemoPredicted(t *testing.T) {
	set := parse(t, `rules:
  - name: r
    signal: logs
    when: attributes["k"] == "0"
    set:
      attributes["svc"]: resource["service.name"]
`)
	recs := func(ks ...string) []*logs.LogRecord {
		var out []*logs.LogRecord
		for i, k := range ks {
			out = append(out, logRec(9, "INFO", fmt.Sprint("m", i), str("k", k)))
		}
		return out
	}
	req := &collogs.ExportLogsServiceRequest{ResourceLogs: []*logs.ResourceLogs{
		{Resource: res("a"), ScopeLogs: []*logs.ScopeLogs{{LogRecords: recs("0", "0", "0")}}},
		{Resource: res("b"), ScopeLogs: []*logs.ScopeLogs{{LogRecords: recs("0", "0", "1", "0")}}},
	}}
	st := stepState(t, set, req)
	if err := st.evaluate(); err != nil {
		t.Fatal(err)
	}
	m := &st.memo
	if len(m.entries) != 3 || m.hits != 4 || m.predicted != 3 {
		t.Errorf("%d entries, %d hits, %d predicted; want 3, 4, 3", len(m.entries), m.hits, m.predicted)
	}
	if m.entries[0].replays != 2 || m.entries[1].replays != 2 {
		t.Errorf("replays %d, %d; want 2, 2", m.entries[0].replays, m.entries[1].replays)
	}
	check(t, set, req)
}

// TestMemoSlots: the open addressing table finds every entry as it grows
// and after a batch with few entries empties their slots only.
func TestMemoSlots(t *testing.T) {
	var m rowMemo
	m.reset()
	for round, n := range []int{5000, 3, 700} {
		for e := range n {
			h := uint64(e) * 0x9e3779b97f4a7c15
			if e%7 == 0 {
				h = uint64(e % 3) // collisions
			}
			m.insert(h, int32(e))
			m.entries = append(m.entries, memoEntry{hash: h})
		}
		for e := range n {
			h, found := m.entries[e].hash, false
			mask := len(m.slots) - 1
			for p := int(h) & mask; m.slots[p] != 0; p = (p + 1) & mask {
				found = found || m.slots[p] == int32(e+1)
			}
			if !found {
				t.Fatalf("round %d: entry %d not found", round, e)
			}
		}
		m.reset()
		for p, e := range m.slots {
			if e != 0 {
				t.Fatalf("round %d: slot %d holds %d after reset", round, p, e)
			}
		}
	}
}

// TestCompiledEdits: values of every type a set produces, encoded once per
// patch (kv.enc), are written the same to every row that shares the patch,
// whole or by layout, between kept entries and after a deleted one.
func TestCompiledEdits(t *testing.T) {
	set := parse(t, `rules:
  - name: edits
    signal: metrics
    when: attributes["k0"] != "zz"
    set:
      attributes["arr"]: '[1, "a", true]'
      attributes["map"]: '{"x": 1.5, "y": "b"}'
      attributes["num"]: 'len(attributes["k0"] ?? "")'
      attributes["f"]: '0.25'
      attributes["b"]: 'true'
      attributes["s"]: '"v"'
    delete: ['attributes["k1"]']
`)
	for seed := range 20 {
		r := rand.New(rand.NewPCG(uint64(seed), 5))
		req := gen(otlpwire.Metrics, r)
		if seed%2 == 0 {
			dupAttrs(req, r, 1+r.IntN(3)) // rows share whole rows
		} else {
			varyAttrs(req, r, 2) // rows share layouts
		}
		check(t, set, req)
	}
}
