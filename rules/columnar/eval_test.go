package columnar

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"

	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

// Tests of evaluate's steps, each on its own.

// prepared is st after evaluate's prepare, with no row given a patch yet,
// as evaluate's loop starts each row.
func prepared(t *testing.T, st *state) *rowEval {
	t.Helper()
	for i := range st.n {
		st.patchOf[i] = -1
	}
	re := &rowEval{}
	if err := st.prepare(re); err != nil {
		t.Fatal(err)
	}
	return re
}

func TestParentInputs(t *testing.T) {
	st := stepState(t, noRules(t), logsReq())
	st.resDone = []bool{true, true, true} // from an earlier batch
	var re rowEval
	if err := st.parentInputs(&re); err != nil {
		t.Fatal(err)
	}
	if re.nRes != 2 || re.nScopes != 2 {
		t.Errorf("%d resources, %d scopes", re.nRes, re.nScopes)
	}
	if got := fmt.Sprint(st.scopes); got != "[{s0 1} {s1 2}]" {
		t.Errorf("scopes %s", got)
	}
	if fmt.Sprint(st.resDone) != "[false false]" {
		t.Errorf("resDone %v", st.resDone)
	}
	if got := fmt.Sprint(st.resource(1)); got != "map[service.name:b]" {
		t.Errorf("resource 1: %s", got)
	}
}

// TestSignalEnv fills each signal's Env from a row, changes it as a rule
// would, and checks what diff records.
func TestSignalEnv(t *testing.T) {
	t.Run("metrics", func(t *testing.T) {
		st := stepState(t, noRules(t), metricsReq())
		re := prepared(t, st)
		if re.env != &st.menv || re.common != &st.menv.Common {
			t.Fatal("not the MetricEnv")
		}
		if err := re.fill(2); err != nil {
			t.Fatal(err)
		}
		if e := &st.menv; e.Name != "mem" || e.Unit != "By" || e.Type != "gauge" || e.Value != 1 {
			t.Errorf("point 2: %q %q %q %v", e.Name, e.Unit, e.Type, e.Value)
		}
		var p patch
		if re.diff(2, &p); p.what != 0 {
			t.Errorf("unchanged: what %b", p.what)
		}
		st.menv.Unit = "MiBy"
		if re.diff(2, &p); p.what != chMetric || p.name != "mem" || p.unit != "MiBy" {
			t.Errorf("unit changed: %+v", p)
		}
	})
	t.Run("logs", func(t *testing.T) {
		st := stepState(t, noRules(t), logsReq())
		re := prepared(t, st)
		if re.env != &st.lenv || re.common != &st.lenv.Common {
			t.Fatal("not the LogEnv")
		}
		if err := re.fill(1); err != nil {
			t.Fatal(err)
		}
		if e := &st.lenv; e.SeverityNumber != 13 || e.SeverityText != "WARN" || e.Body != "m1" {
			t.Errorf("record 1: %d %q %v", e.SeverityNumber, e.SeverityText, e.Body)
		}
		st.lenv.SeverityText, st.lenv.Body = "W", "m1" // the body set to what it was
		var p patch
		if re.diff(1, &p); p.what != chText || p.text != "W" {
			t.Errorf("text changed: %+v", p)
		}
		st.lenv.SeverityNumber, st.lenv.Body = 14, int64(1)
		p = patch{}
		if re.diff(1, &p); p.what != chText|chSevNum|chBody || p.sevNum != 14 || p.body != int64(1) {
			t.Errorf("all changed: %+v", p)
		}
	})
	t.Run("traces", func(t *testing.T) {
		st := stepState(t, noRules(t), tracesReq())
		re := prepared(t, st)
		if re.env != &st.senv || re.common != &st.senv.Common {
			t.Fatal("not the SpanEnv")
		}
		if err := re.fill(0); err != nil {
			t.Fatal(err)
		}
		if e := &st.senv; e.Name != "a" || e.DurationMs != 2 || e.StatusCode != "unset" || e.TraceID != "01" {
			t.Errorf("span 0: %q %v %q %q", e.Name, e.DurationMs, e.StatusCode, e.TraceID)
		}
		if err := re.fill(2); err != nil {
			t.Fatal(err)
		}
		if e := &st.senv; e.StatusCode != "error" || e.StatusMessage != "boom" {
			t.Errorf("span 2: %q %q", e.StatusCode, e.StatusMessage)
		}
		st.senv.Name = "C"
		var p patch
		if re.diff(2, &p); p.what != chName || p.name != "C" {
			t.Errorf("name changed: %+v", p)
		}
	})
}

func TestItemInputs(t *testing.T) {
	st := stepState(t, noRules(t), metricsReq())
	if err := st.itemInputs(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(u32sOf(st.resID), u32sOf(st.scopeID)); got != "[0 0 0 0 1 1] [0 0 0 1 2 2]" {
		t.Errorf("ids %s", got)
	}
	if st.itAttrs.m.Len() != 6 || st.itAttrs.keys.Value(5) != "route" {
		t.Errorf("attributes not read")
	}
	if len(st.fieldKeys) != 0 {
		t.Errorf("no memo: %d field keys", len(st.fieldKeys))
	}

	// Rules the memo applies to, reading a field: the memo keys on it.
	set := parse(t, `rules:
  - name: r
    signal: logs
    when: severity_text == "INFO"
    set:
      attributes["seen"]: '"true"'
`)
	st = stepState(t, set, logsReq())
	if !st.info.memo {
		t.Fatal("rule not memoised")
	}
	if err := st.itemInputs(); err != nil {
		t.Fatal(err)
	}
	if len(st.fieldKeys) != 1 || !st.sameFields(0, 3) || st.sameFields(0, 1) {
		t.Errorf("%d field keys, not keyed on severity_text", len(st.fieldKeys))
	}
}

func TestFillEnv(t *testing.T) {
	tests := []struct {
		name             string
		attrs, res, cow  bool
		row, r, s        int
		wantAttrs, wantR string
		keys             rules.Keys
	}{
		{"nothing read", false, false, false, 1, 0, 0, "map[]", "map[]", rules.Keys{Resource: 1, Scope: 1}},
		{"attributes and resource", true, true, false, 1, 0, 0, "map[k:1 n:1]", "map[service.name:a]", rules.Keys{Resource: 1, Scope: 1}},
		{"second resource and scope", true, true, false, 3, 1, 1, "map[k:0]", "map[service.name:b]", rules.Keys{Resource: 2, Scope: 2}},
		{"resource written", true, true, true, 4, 1, 1, "map[k:0]", "map[service.name:b]", rules.Keys{Resource: 0, Scope: 2}},
	}
	for _, tt := range tests {
		st := stepState(t, noRules(t), logsReq())
		prepared(t, st)
		st.info.attrs, st.info.res, st.info.writesResource = tt.attrs, tt.res, tt.cow
		c := &st.lenv.Common
		keys, res := st.fillEnv(c, tt.row, tt.r, tt.s)
		if keys != tt.keys {
			t.Errorf("%s: keys %+v, want %+v", tt.name, keys, tt.keys)
		}
		if got := fmt.Sprint(c.Attributes); got != tt.wantAttrs || (c.Attributes == nil) == tt.attrs {
			t.Errorf("%s: attributes %s (nil %v), want %s", tt.name, got, c.Attributes == nil, tt.wantAttrs)
		}
		if got := fmt.Sprint(c.Resource); got != tt.wantR {
			t.Errorf("%s: resource %s, want %s", tt.name, got, tt.wantR)
		}
		if c.Scope != st.scopes[tt.s] {
			t.Errorf("%s: scope %v", tt.name, c.Scope)
		}
		switch {
		case !tt.res:
			if res != nil || c.Resource != nil {
				t.Errorf("%s: resource read", tt.name)
			}
		case tt.cow:
			// The item's own copy: editing it leaves the shared map.
			c.Resource["service.name"] = "z"
			if got := fmt.Sprint(res, st.resource(tt.r)); got != "map[service.name:b] map[service.name:b]" {
				t.Errorf("%s: copy on write shared: %s", tt.name, got)
			}
		default:
			if fmt.Sprint(res) != tt.wantR {
				t.Errorf("%s: returned resource %v", tt.name, res)
			}
		}
	}
}

func TestApplyRules(t *testing.T) {
	src := `rules:
  - name: inc
    signal: logs
    set:
      attributes["n"]: attributes["n"] + 1
  - name: debug
    signal: logs
    when: severity_number < 9
    drop: true
`
	for _, memo := range []bool{false, true} {
		set := parse(t, src)
		st := stepState(t, set, logsReq())
		re := prepared(t, st)
		st.info.attrs = true
		var me *memoEntry
		if memo {
			me = &memoEntry{}
		}
		apply := func(i int) rules.Result {
			keys, _ := st.fillEnv(re.common, i, int(st.resID.Value(i)), int(st.scopeID.Value(i)))
			if err := re.fill(i); err != nil {
				t.Fatal(err)
			}
			return st.applyRules(re.env, keys, me)
		}
		if out := apply(1); out.Drop || !out.Changed || st.errCount != 0 || st.lenv.Attributes["n"] != int64(2) {
			t.Errorf("memo %v, record 1: %+v, %d errors", memo, out, st.errCount)
		}
		if memo {
			// The tally counts the row once more for a row that replays it.
			st.ev.AddTally(&me.tally)
			st.ev.Flush()
			if c := set.Stats()[0].Changed; c != 2 {
				t.Errorf("changed %d after the tally, want 2", c)
			}
		}
		if out := apply(0); out.Drop || st.errCount != 1 || st.firstErr == nil || !strings.Contains(st.firstErr.Error(), `rule "inc"`) {
			t.Errorf("memo %v, record 0 (no n): %+v, %d errors, first %v", memo, out, st.errCount, st.firstErr)
		}
		first := st.firstErr
		if out := apply(4); !out.Drop || st.errCount != 2 || st.firstErr != first {
			t.Errorf("memo %v, record 4: %+v, %d errors, first %v", memo, out, st.errCount, st.firstErr)
		}
		if memo && !me.err {
			t.Errorf("error not memoised")
		}
	}
}

func TestDropRow(t *testing.T) {
	st := &state{drop: make([]bool, 3)}
	st.dropRow(1, nil)
	me := &memoEntry{}
	st.dropRow(2, me)
	if fmt.Sprint(st.drop) != "[false true true]" || !st.anyDrop || !me.drop {
		t.Errorf("drop %v, anyDrop %v, memo %v", st.drop, st.anyDrop, me.drop)
	}
}

// TestRecordPatch fills logsReq's record 1 (attributes k="1", n=1;
// resource 0), changes the Env as rules would, and records the patch.
func TestRecordPatch(t *testing.T) {
	tests := []struct {
		name     string
		readOnly bool // the rules read the resource, none writes it
		change   func(st *state)
		want     string // the patch and its kvs, "" for none
		newRes   string
	}{
		{"nothing", false, func(st *state) {}, "", ""},
		{"the resource read, not written", true, func(st *state) {}, "", ""},
		{"a value set to what it was", false, func(st *state) { st.attrs["k"] = "1" }, "", ""},
		{"a value set", false, func(st *state) { st.attrs["k"] = "z" }, `attrs [k="z"* n]`, ""},
		{"a key removed, one added", false, func(st *state) { delete(st.attrs, "k"); st.attrs["b"] = true; st.attrs["a"] = int64(1) },
			`attrs [n a=1* b=true*]`, ""},
		{"a field", false, func(st *state) { st.lenv.SeverityText = "X" }, "text X []", ""},
		{"the resource", false, func(st *state) { st.resCOW["env"] = "prod" }, "res 0 []", `0: [service.name env="prod"*]`},
		{"the resource set to what it was", false, func(st *state) { st.resCOW["service.name"] = "a" }, "", ""},
	}
	for _, tt := range tests {
		st := stepState(t, noRules(t), logsReq())
		re := prepared(t, st)
		st.info.attrs, st.info.res, st.info.writesResource = true, true, !tt.readOnly
		_, res := st.fillEnv(re.common, 1, 0, 0)
		if err := re.fill(1); err != nil {
			t.Fatal(err)
		}
		tt.change(st)
		st.recordPatch(re, 1, 0, res, nil)
		got := ""
		if p := st.patchAt(1); p != nil {
			got = describePatch(p, st.kvs[p.kvStart:p.kvEnd])
		} else if len(st.patches) != 0 {
			t.Errorf("%s: patch recorded but not linked", tt.name)
		}
		if got != tt.want {
			t.Errorf("%s: patch %q, want %q", tt.name, got, tt.want)
		}
		var nr []string
		for _, r := range st.newRes {
			nr = append(nr, fmt.Sprintf("%d: %s", r.orig, describeKVs(r.kvs)))
		}
		if newRes := strings.Join(nr, "; "); newRes != tt.newRes {
			t.Errorf("%s: new resources %q, want %q", tt.name, newRes, tt.newRes)
		}
	}
}

func describeKVs(kvs []kv) string {
	var s []string
	for _, e := range kvs {
		if e.orig >= 0 {
			s = append(s, e.key)
		} else {
			s = append(s, fmt.Sprintf("%s=%#v*", e.key, e.val))
		}
	}
	return "[" + strings.Join(s, " ") + "]"
}

func describePatch(p *patch, kvs []kv) string {
	var s []string
	if p.what&chAttrs != 0 {
		s = append(s, "attrs")
	}
	if p.what&chText != 0 {
		s = append(s, "text "+p.text)
	}
	if p.res >= 0 {
		s = append(s, fmt.Sprint("res ", p.res))
	}
	return strings.Join(append(s, describeKVs(kvs)), " ")
}

// TestRecordPatchNaN: a NaN attribute the rules leave as NaN is no change.
func TestRecordPatchNaN(t *testing.T) {
	req := &collogs.ExportLogsServiceRequest{ResourceLogs: []*logs.ResourceLogs{{ScopeLogs: []*logs.ScopeLogs{{LogRecords: []*logs.LogRecord{
		{Attributes: []*common.KeyValue{{Key: "f", Value: &common.AnyValue{Value: &common.AnyValue_DoubleValue{DoubleValue: math.NaN()}}}}},
	}}}}}}
	st := stepState(t, noRules(t), req)
	re := prepared(t, st)
	st.info.attrs = true
	_, res := st.fillEnv(re.common, 0, 0, 0)
	if err := re.fill(0); err != nil {
		t.Fatal(err)
	}
	st.attrs["f"] = math.NaN()
	st.recordPatch(re, 0, 0, res, nil)
	if len(st.patches) != 0 {
		t.Errorf("NaN set to NaN: patch %+v", st.patches[0])
	}
	st.attrs["f"] = 1.0
	st.recordPatch(re, 0, 0, res, nil)
	if len(st.patches) != 1 {
		t.Errorf("NaN set to 1: no patch")
	}
}

// TestRecordPatchMemo: a patch computed for a memoised row is the memo
// entry's, so that the rows replaying it get it.
func TestRecordPatchMemo(t *testing.T) {
	st := stepState(t, noRules(t), logsReq())
	re := prepared(t, st)
	st.info.attrs = true
	st.memo.entries = make([]memoEntry, 3)
	me := &st.memo.entries[2]
	_, res := st.fillEnv(re.common, 1, 0, 0)
	if err := re.fill(1); err != nil {
		t.Fatal(err)
	}
	st.attrs["k"] = "z"
	st.recordPatch(re, 1, 0, res, me)
	p := st.patchAt(1)
	if p == nil || p.memo != 3 || !me.hasPatch || me.patch != st.patchOf[1] {
		t.Errorf("patch %+v, memo entry %+v", p, me)
	}
}

func TestMemoRow(t *testing.T) {
	// Records 0, 3 and 4 have the same attributes; the rule reads
	// neither resource nor scope, so they share an outcome.
	set := parse(t, `rules:
  - name: r
    signal: logs
    when: attributes["k"] == "0"
    set:
      attributes["seen"]: '"true"'
`)
	st := stepState(t, set, logsReq())
	prepared(t, st)
	me, hit := st.memoRow(0, 0, 0)
	if hit || me == nil || len(st.memo.entries) != 1 {
		t.Fatalf("first row: hit %v, entry %v", hit, me)
	}
	me.drop = true
	if me, hit := st.memoRow(1, 0, 0); hit || me == nil {
		t.Errorf("other attributes: hit %v", hit)
	}
	if me, hit := st.memoRow(3, 1, 1); !hit || me != nil || !st.drop[3] || !st.anyDrop || st.memo.hits != 1 {
		t.Errorf("equal attributes: hit %v, drop %v", hit, st.drop[3])
	}

	// Too few hits: the memo gives up.
	st.memo.entries = append(st.memo.entries, make([]memoEntry, memoGiveUp)...)
	if me, hit := st.memoRow(2, 0, 0); hit || me != nil || !st.memo.off {
		t.Errorf("give up: hit %v, entry %v, off %v", hit, me, st.memo.off)
	}
}

func TestReplay(t *testing.T) {
	st := stepState(t, noRules(t), logsReq())
	st.patchOf[0], st.patchOf[1], st.patchOf[2] = -1, -1, -1
	st.memo.entries = []memoEntry{{hasPatch: true, patch: 7, err: true}, {drop: true}}
	st.replay(0, &st.memo.entries[0])
	st.replay(1, &st.memo.entries[1])
	st.replay(2, &st.memo.entries[0])
	if st.patchOf[0] != 7 || st.patchOf[2] != 7 || st.errCount != 0 || !st.drop[1] || st.drop[0] || st.patchOf[1] != -1 {
		t.Errorf("patchOf %v, errors %d, drop %v", st.patchOf[:3], st.errCount, st.drop[:3])
	}
	// The errors of the rows that replayed an entry that failed count at
	// the end of the batch.
	st.addReplays()
	if st.errCount != 2 || st.memo.entries[0].replays != 2 || st.memo.entries[1].replays != 1 {
		t.Errorf("after addReplays: %d errors, replays %d, %d", st.errCount, st.memo.entries[0].replays, st.memo.entries[1].replays)
	}
}

func TestPatchBase(t *testing.T) {
	// logsReq's attribute rows start at entries 0, 1, 3, 3, 4 (record 2
	// has none).
	st := stepState(t, noRules(t), logsReq())
	prepared(t, st)
	st.memo.entries = []memoEntry{{row: 3}}
	for _, tt := range []struct {
		row  int
		memo int32
		want int32
	}{{4, 1, 1}, {3, 1, 0}, {0, 1, -3}, {4, 0, 0}} {
		if got := st.patchBase(tt.row, &patch{memo: tt.memo}); got != tt.want {
			t.Errorf("row %d, memo %d: base %d, want %d", tt.row, tt.memo, got, tt.want)
		}
	}
}

func TestEvaluateBrokenItem(t *testing.T) {
	st := stepState(t, noRules(t), logsReq())
	withColumn(t, &st.b.Items, 1, 0, 0, 0, 1, 2)
	err := st.evaluate()
	if !errors.Is(err, schemas.ErrSchema) || !strings.Contains(err.Error(), "item 4 refers to resource 1 of 2, scope 2 of 2") {
		t.Errorf("err = %v", err)
	}
}
