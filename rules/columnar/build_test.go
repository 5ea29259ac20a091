package columnar

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// Tests of build's steps, each on its own: the plan of the parent tables
// (build.go), the tables (build_tables.go), the items (build_items.go).

func TestKeptRows(t *testing.T) {
	tests := []struct {
		drop []bool
		want []int32
	}{
		{nil, []int32{}},
		{[]bool{false, false, false}, []int32{0, 1, 2}},
		{[]bool{true, false, true, false}, []int32{1, 3}},
		{[]bool{true, true}, []int32{}},
	}
	for _, tt := range tests {
		st := &state{n: len(tt.drop), drop: tt.drop}
		if got := st.keptRows(); !slices.Equal(got, tt.want) {
			t.Errorf("drop %v: kept %v, want %v", tt.drop, got, tt.want)
		}
	}
}

func TestKeepsParents(t *testing.T) {
	tests := []struct {
		name    string
		anyDrop bool
		newRes  int
		patches []patch
		want    bool
	}{
		{"nothing", false, 0, nil, true},
		{"attributes and fields", false, 0, []patch{{res: -1, what: chAttrs}, {res: -1, what: chName | chText | chBody}}, true},
		{"a drop", true, 0, nil, false},
		{"a new resource", false, 1, nil, false},
		{"a patch moving resource", false, 0, []patch{{res: -1, what: chAttrs}, {res: 0}}, false},
		{"a metric renamed", false, 0, []patch{{res: -1, what: chAttrs | chMetric}}, false},
	}
	for _, tt := range tests {
		st := &state{anyDrop: tt.anyDrop, newRes: make([]newResource, tt.newRes), patches: tt.patches}
		if got := st.keepsParents(); got != tt.want {
			t.Errorf("%s: keepsParents = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestParentLinks(t *testing.T) {
	st := stepState(t, noRules(t), metricsReq())
	var pp parents
	if err := st.parentLinks(&pp); err != nil {
		t.Fatal(err)
	}
	if pp.res.n != 2 || pp.scope.n != 3 || pp.met.n != 4 {
		t.Errorf("rows: %d resources, %d scopes, %d metrics; want 2, 3, 4", pp.res.n, pp.scope.n, pp.met.n)
	}
	for _, c := range []struct {
		name      string
		got, want []int32
	}{
		{"scope.up", pp.scope.up, []int32{0, 0, 1}},
		{"met.up", pp.met.up, []int32{0, 0, 1, 2}},
		{"metRes", pp.metRes, []int32{0, 0, 0, 1}},
		{"res.up", pp.res.up, nil},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if pp.metricID == nil || pp.inName.Value(1) != "mem" || pp.inUnit.Value(1) != "By" {
		t.Errorf("metric columns not read")
	}

	st = stepState(t, noRules(t), logsReq())
	pp = parents{}
	if err := st.parentLinks(&pp); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pp.scope.up, []int32{0, 1}) || pp.met.n != 0 || pp.met.up != nil || pp.metricID != nil {
		t.Errorf("logs: scope.up %v, %d metrics, met.up %v", pp.scope.up, pp.met.n, pp.met.up)
	}
}

// withColumn replaces column col of the table of b that table points at.
func withColumn(t *testing.T, table *arrow.RecordBatch, col int, vals ...int32) {
	t.Helper()
	rec := *table
	cols := slices.Clone(rec.Columns())
	c := u32Column(memory.DefaultAllocator, vals)
	defer c.Release()
	cols[col] = c
	*table = array.NewRecordBatch(rec.Schema(), cols, int64(len(vals)))
	rec.Release()
}

func TestParentLinksBroken(t *testing.T) {
	tests := []struct {
		name  string
		table func(b *schemas.Batch) *arrow.RecordBatch
		col   int
		vals  []int32
		want  string
	}{
		{"scope", func(b *schemas.Batch) *arrow.RecordBatch { return &b.Scopes }, schemas.ScopeResourceID, []int32{0, 0, 2}, "scope 2 refers to resource 2 of 2"},
		{"metric", func(b *schemas.Batch) *arrow.RecordBatch { return &b.Metrics }, schemas.MetScopeID, []int32{0, 0, 1, 3}, "metric 3 refers to scope 3 of 3"},
		{"point", func(b *schemas.Batch) *arrow.RecordBatch { return &b.Items }, schemas.PtMetricID, []int32{0, 0, 1, 2, 3, 4}, "data point 5 refers to metric 4 of 4"},
	}
	for _, tt := range tests {
		st := stepState(t, noRules(t), metricsReq())
		withColumn(t, tt.table(st.b), tt.col, tt.vals...)
		var pp parents
		err := st.parentLinks(&pp)
		if !errors.Is(err, schemas.ErrSchema) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestRemapItems moves points of metricsReq: 1 and 2 to a new resource,
// 3 to a renamed metric, 4 and 5 to the same renamed metric; 0 is dropped.
func TestRemapItems(t *testing.T) {
	st := stepState(t, noRules(t), metricsReq())
	if err := st.itemInputs(); err != nil {
		t.Fatal(err)
	}
	var pp parents
	if err := st.parentLinks(&pp); err != nil {
		t.Fatal(err)
	}
	st.newRes = []newResource{{orig: 0}}
	setPatches(st, map[int]patch{
		1: {res: 0, what: chAttrs},
		2: {res: 0},
		3: {res: -1, what: chMetric, name: "req2", unit: "s"},
		4: {res: -1, what: chMetric, name: "x", unit: "1"},
		5: {res: -1, what: chMetric, name: "x", unit: "1"},
	})
	ip := st.remapItems(&pp, []int32{1, 2, 3, 4, 5})
	for _, c := range []struct {
		name      string
		got, want any
	}{
		// Resource 2 is the new one; scope 3 the copy of scope 0 under
		// it; metrics 4 and 5 copies of metrics 0 and 1 under scope 3,
		// 6 and 7 the renamed ones.
		{"ip.res", ip.res, []int32{2, 2, 0, 1, 1}},
		{"ip.scope", ip.scope, []int32{3, 3, 1, 2, 2}},
		{"ip.met", ip.met, []int32{4, 5, 6, 7, 7}},
		{"res.src", pp.res.src, []int32{0}},
		{"scope.src", pp.scope.src, []int32{0}},
		{"scope.up", pp.scope.up, []int32{0, 0, 1, 2}},
		{"met.src", pp.met.src, []int32{0, 1, 2, 3}},
		{"met.up", pp.met.up, []int32{0, 0, 1, 2, 3, 3, 1, 2}},
		{"metRes", pp.metRes, []int32{0, 0, 0, 1, 2, 2, 0, 1}},
		{"metName", pp.metName, []string{"cpu", "mem", "req2", "x"}},
		{"metUnit", pp.metUnit, []string{"1", "By", "s", "1"}},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestCountItems(t *testing.T) {
	// Four items; item 1 dropped, items 2 and 3 moved to new resource 2
	// and the copy (scope 3) of their scope 2; for metrics, item 3 also
	// to a copy (metric 2) of its metric 1.
	st := &state{n: 4, resID: u32s(t, 0, 0, 1, 1), scopeID: u32s(t, 0, 1, 2, 2)}
	pp := parents{
		res:      level{n: 2, src: []int32{1}},
		scope:    level{n: 3, src: []int32{2}},
		met:      level{n: 2, src: []int32{1}},
		metricID: u32s(t, 0, 0, 1, 1),
	}
	ip := itemParents{res: []int32{0, 2, 2}, scope: []int32{0, 3, 3}, met: []int32{0, 1, 2}}
	st.countItems(&pp, &ip)
	for _, c := range []struct {
		name      string
		got, want []int32
	}{
		{"res.had", pp.res.had, []int32{2, 2}},
		{"res.has", pp.res.has, []int32{1, 0, 2}},
		{"scope.had", pp.scope.had, []int32{1, 1, 2}},
		{"scope.has", pp.scope.has, []int32{1, 0, 0, 2}},
		{"met.had", pp.met.had, []int32{2, 2}},
		{"met.has", pp.met.has, []int32{1, 1, 1}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// Without metrics nothing is counted for them.
	pp = parents{res: level{n: 2}, scope: level{n: 3}}
	ip = itemParents{res: []int32{0, 1}, scope: []int32{0, 2}}
	st.countItems(&pp, &ip)
	if len(pp.met.had) != 0 || len(pp.met.has) != 0 || !slices.Equal(pp.scope.has, []int32{1, 0, 1}) {
		t.Errorf("logs: met.had %v, met.has %v, scope.has %v", pp.met.had, pp.met.has, pp.scope.has)
	}
}

func TestLevelPrune(t *testing.T) {
	tests := []struct {
		name      string
		l         level
		upOut     []int32
		out, rows []int32
		gone      bool
	}{
		{
			name: "all stay",
			l:    level{n: 2, had: []int32{1, 2}, has: []int32{1, 1}},
			out:  []int32{0, 1}, rows: []int32{0, 1},
		},
		{
			name: "emptied row goes",
			l:    level{n: 3, had: []int32{1, 2, 1}, has: []int32{1, 0, 1}},
			out:  []int32{0, -1, 1}, rows: []int32{0, 2}, gone: true,
		},
		{
			name: "row that arrived empty stays",
			l:    level{n: 2, had: []int32{0, 1}, has: []int32{0, 1}},
			out:  []int32{0, 1}, rows: []int32{0, 1},
		},
		{
			name: "new rows copy their source",
			l:    level{n: 2, src: []int32{1, 0}, had: []int32{1, 1}, has: []int32{0, 1, 1, 1}},
			out:  []int32{-1, 0, 1, 2}, rows: []int32{1, 1, 0}, gone: true,
		},
		{
			name:  "row under a parent that went goes",
			l:     level{n: 2, src: []int32{0}, up: []int32{0, 1, 2}, had: []int32{0, 1}, has: []int32{0, 1, 1}},
			upOut: []int32{-1, 0, 1},
			out:   []int32{-1, 0, 1}, rows: []int32{1, 0}, gone: true,
		},
	}
	for _, tt := range tests {
		l := tt.l
		gone := l.prune(tt.upOut)
		if gone != tt.gone || !slices.Equal(l.out, tt.out) || !slices.Equal(l.rows, tt.rows) {
			t.Errorf("%s: gone %v, out %v, rows %v; want %v, %v, %v", tt.name, gone, l.out, l.rows, tt.gone, tt.out, tt.rows)
		}
	}
}

func TestParentsPrune(t *testing.T) {
	// One resource, two scopes, a metric under each.
	plan := func() parents {
		return parents{
			res:   level{n: 1, had: []int32{2}, has: []int32{2}},
			scope: level{n: 2, up: []int32{0, 0}, had: []int32{1, 1}, has: []int32{1, 1}},
			met:   level{n: 2, up: []int32{0, 1}, had: []int32{1, 1}, has: []int32{1, 1}},
		}
	}
	pp := plan()
	if pp.prune() {
		t.Errorf("nothing changed: structural")
	}

	pp = plan()
	pp.met.src, pp.met.up, pp.met.has = []int32{0}, []int32{0, 1, 0}, []int32{0, 1, 1}
	if !pp.prune() || !slices.Equal(pp.met.out, []int32{-1, 0, 1}) {
		t.Errorf("metric replaced by its copy: out %v", pp.met.out)
	}

	pp = plan()
	pp.res.has = []int32{0}
	pp.scope.has, pp.met.has = []int32{1, 0}, []int32{1, 0} // counts below a gone parent do not matter
	if !pp.prune() || !slices.Equal(pp.scope.out, []int32{-1, -1}) || !slices.Equal(pp.met.out, []int32{-1, -1}) || len(pp.met.rows) != 0 {
		t.Errorf("resource emptied: scopes %v, metrics %v (%v)", pp.scope.out, pp.met.out, pp.met.rows)
	}

	pp = plan()
	pp.res.src, pp.res.has = []int32{0}, []int32{2, 0}
	if !pp.prune() || !slices.Equal(pp.res.rows, []int32{0, 0}) {
		t.Errorf("new resource: rows %v", pp.res.rows)
	}
}

func TestRenumber(t *testing.T) {
	pp := parents{
		res:   level{out: []int32{0, -1, 1}},
		scope: level{out: []int32{-1, 0, 1, 2}},
		met:   level{out: []int32{1, 0}},
	}
	ip := itemParents{res: []int32{0, 2, 2}, scope: []int32{1, 3, 2}, met: []int32{0, 1, 1}}
	ip.renumber(&pp)
	if !slices.Equal(ip.res, []int32{0, 1, 1}) || !slices.Equal(ip.scope, []int32{0, 2, 1}) || !slices.Equal(ip.met, []int32{1, 0, 0}) {
		t.Errorf("renumbered %v %v %v", ip.res, ip.scope, ip.met)
	}
	ip = itemParents{res: []int32{2}, scope: []int32{3}}
	ip.renumber(&pp)
	if !slices.Equal(ip.res, []int32{1}) || !slices.Equal(ip.scope, []int32{2}) || ip.met != nil {
		t.Errorf("without metrics: %v %v %v", ip.res, ip.scope, ip.met)
	}
}

// attrsAt decodes row i of an attributes column as "key=value" entries in
// their order.
func attrsAt(t *testing.T, a arrow.Array, i int) string {
	t.Helper()
	c, err := newMapCols(a)
	if err != nil {
		t.Fatal(err)
	}
	if c.m.IsNull(i) {
		return "null"
	}
	var box boxer
	var kvs []string
	start, end := c.m.ValueOffsets(i)
	for j := int(start); j < int(end); j++ {
		kvs = append(kvs, fmt.Sprintf("%s=%#v", c.keys.Value(j), c.vals.value(j, &box)))
	}
	return strings.Join(kvs, " ")
}

func TestParentTablesKept(t *testing.T) {
	st := stepState(t, noRules(t), metricsReq())
	out := &schemas.Batch{Signal: st.b.Signal}
	if err := st.parentTables(out, &parents{}, false); err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if out.Resources != st.b.Resources || out.Scopes != st.b.Scopes || out.Metrics != st.b.Metrics || out.Items != nil {
		t.Errorf("not structural: parent tables are not the input's")
	}
}

// TestParentTables writes the tables of a plan for metricsReq: resource 1
// goes, new resource 2 copies resource 0; scope 2 (under resource 1) goes,
// scope 3 copies scope 0 under resource 2; metric 3 goes, metric 4 copies
// metric 0 under scope 3 with a new name.
func TestParentTables(t *testing.T) {
	st := stepState(t, noRules(t), metricsReq())
	if err := st.parentInputs(&rowEval{}); err != nil {
		t.Fatal(err)
	}
	var pp parents
	if err := st.parentLinks(&pp); err != nil {
		t.Fatal(err)
	}
	st.newRes = []newResource{{orig: 0, kvs: []kv{{orig: 0, key: "service.name"}, {orig: -1, key: "env", val: "prod", enc: encode("prod")}}}}
	pp.res.src, pp.res.out, pp.res.rows = []int32{0}, []int32{0, -1, 1}, []int32{0, 0}
	pp.scope.src, pp.scope.up = []int32{0}, append(pp.scope.up, 2)
	pp.scope.out, pp.scope.rows = []int32{0, 1, -1, 2}, []int32{0, 1, 0}
	pp.met.src, pp.met.up, pp.metRes = []int32{0}, append(pp.met.up, 3), append(pp.metRes, 2)
	pp.metName, pp.metUnit = []string{"cpu2"}, []string{"ms"}
	pp.met.out, pp.met.rows = []int32{0, 1, 2, -1, 3}, []int32{0, 1, 2, 0}

	out := &schemas.Batch{Signal: st.b.Signal}
	defer out.Release()
	if err := st.parentTables(out, &pp, true); err != nil {
		t.Fatal(err)
	}
	if n := out.Resources.NumRows(); n != 2 {
		t.Fatalf("%d resources, want 2", n)
	}
	ra := out.Resources.Column(schemas.ResAttributes)
	if got := attrsAt(t, ra, 0) + " | " + attrsAt(t, ra, 1); got != `service.name="a" | service.name="a" env="prod"` {
		t.Errorf("resources: %s", got)
	}
	sc := out.Scopes
	if got := fmt.Sprint(u32sOf(sc.Column(schemas.ScopeResourceID)), stringsOf(sc.Column(schemas.ScopeName))); got != "[0 0 1] [s0 s1 s0]" {
		t.Errorf("scopes: %s", got)
	}
	mt := out.Metrics
	got := fmt.Sprint(u32sOf(mt.Column(schemas.MetResourceID)), u32sOf(mt.Column(schemas.MetScopeID)),
		stringsOf(mt.Column(schemas.MetName)), stringsOf(mt.Column(schemas.MetUnit)))
	if want := "[0 0 0 1] [0 0 1 2] [cpu mem req cpu2] [1 By 1 ms]"; got != want {
		t.Errorf("metrics: %s, want %s", got, want)
	}
	// Columns the plan does not write are the input rows'.
	if got := mt.Column(schemas.MetType).(*array.Uint8).Value(3); got != schemas.MetricGauge {
		t.Errorf("new metric's type %d", got)
	}
}

// TestItemsTable: logs 1 and 3 dropped, log 2 given a severity text, the
// others moved to other (renumbered) parents.
func TestItemsTable(t *testing.T) {
	st := stepState(t, noRules(t), logsReq())
	if err := st.itemInputs(); err != nil {
		t.Fatal(err)
	}
	setPatches(st, map[int]patch{2: {res: -1, what: chText, text: "E!"}})
	sel := []int32{0, 2, 4}
	for _, structural := range []bool{false, true} {
		ip := itemParents{res: []int32{1, 0, 0}, scope: []int32{1, 1, 0}}
		it, err := st.itemsTable(sel, &ip, structural)
		if err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprint(u32sOf(it.Column(0)), u32sOf(it.Column(1)), stringsOf(it.Column(schemas.LogSeverityText)))
		want := "[0 0 1] [0 0 1] [INFO E! DEBUG]"
		if structural {
			want = "[1 0 0] [1 1 0] [INFO E! DEBUG]"
		}
		if got != want {
			t.Errorf("structural %v: %s, want %s", structural, got, want)
		}
		if n := it.NumRows(); n != 3 {
			t.Errorf("%d rows", n)
		}
		it.Release()
	}
}

func TestChangedFields(t *testing.T) {
	st := &state{patches: []patch{{what: chAttrs}, {what: chText}, {what: chText | chBody}}}
	if got := st.changedFields(); got != chAttrs|chText|chBody {
		t.Errorf("changedFields = %b", got)
	}
}

// TestItemAttrs rebuilds the attributes of logsReq's records 0 (a new key),
// 1 (an entry dropped), 3 and 4 (one patch the memo shares: computed on 3,
// its entries relative to 3), dropping record 2, through both writers: the
// bulk one and the entry by entry one.
func TestItemAttrs(t *testing.T) {
	st := stepState(t, noRules(t), logsReq())
	if err := st.itemInputs(); err != nil {
		t.Fatal(err)
	}
	// Entries of the input: record 0 k (entry 0); 1 k, n (1, 2); 3 k (3); 4 k (4).
	st.kvs = []kv{
		{orig: 0, key: "k"}, {orig: -1, key: "new", val: true, enc: encode(true)},
		{orig: 2, key: "n"},
		{orig: 3, key: "k"}, {orig: -1, key: "m", val: int64(5), enc: encode(int64(5))},
	}
	setPatches(st, map[int]patch{
		0: {res: -1, what: chAttrs, kvStart: 0, kvEnd: 2},
		1: {res: -1, what: chAttrs | chText, kvStart: 2, kvEnd: 3},
		2: {res: -1, what: chAttrs, kvStart: 0, kvEnd: 1},
		3: {res: -1, what: chAttrs, kvStart: 3, kvEnd: 5, memo: 1},
	})
	st.patchOf[4] = st.patchOf[3]
	st.memo.entries = []memoEntry{{row: 3, hasPatch: true, patch: st.patchOf[3]}}
	sel := []int32{0, 1, 3, 4}
	want := []string{`k="0" new=true`, `n=1`, `k="0" m=5`, `k="0" m=5`}
	if !plainAttrs(&st.itAttrs) {
		t.Fatal("test input should take the bulk path")
	}
	bulk, byEntry := st.attrColumn(sel), st.attrColumnByEntry(sel)
	defer bulk.Release()
	defer byEntry.Release()
	for name, col := range map[string]arrow.Array{"attrColumn": bulk, "attrColumnByEntry": byEntry} {
		if col.Len() != len(want) {
			t.Fatalf("%s: %d rows", name, col.Len())
		}
		for k, w := range want {
			if got := attrsAt(t, col, k); got != w {
				t.Errorf("%s row %d: %s, want %s", name, k, got, w)
			}
		}
	}
	if !array.Equal(bulk, byEntry) {
		t.Errorf("the two writers differ")
	}
}

// TestLogColumns rebuilds severity_text, severity_number and body of
// logsReq's records 0, 1, 3 and 4 (2 dropped).
func TestLogColumns(t *testing.T) {
	st := stepState(t, noRules(t), logsReq())
	setPatches(st, map[int]patch{
		1: {res: -1, what: chText | chSevNum, text: "W", sevNum: 14},
		3: {res: -1, what: chBody, body: int64(7)},
		4: {res: -1, what: chBody, body: nil},
	})
	sel := []int32{0, 1, 3, 4}
	cols := make([]arrow.Array, st.b.Items.NumCols())
	if err := st.fieldColumns(cols, sel, chText|chSevNum|chBody); err != nil {
		t.Fatal(err)
	}
	defer releaseAll(cols)
	if got := stringsOf(cols[schemas.LogSeverityText]); !slices.Equal(got, []string{"INFO", "W", "INFO", "DEBUG"}) {
		t.Errorf("severity_text %v", got)
	}
	if got := cols[schemas.LogSeverityNumber].(*array.Int32).Int32Values(); !slices.Equal(got, []int32{9, 14, 9, 5}) {
		t.Errorf("severity_number %v", got)
	}
	body, err := newAnyCols(cols[schemas.LogBody])
	if err != nil {
		t.Fatal(err)
	}
	var box boxer
	var got []string
	for i := range len(sel) {
		got = append(got, fmt.Sprintf("%d:%#v", body.Type.Value(i), body.value(i, &box)))
	}
	want := fmt.Sprint([]string{
		fmt.Sprintf("%d:%#v", schemas.ValueString, "m0"), fmt.Sprintf("%d:%#v", schemas.ValueString, "m1"),
		fmt.Sprintf("%d:%#v", schemas.ValueInt, int64(7)), fmt.Sprintf("%d:%#v", schemas.ValueNone, nil),
	})
	if fmt.Sprint(got) != want {
		t.Errorf("body %v, want %v", got, want)
	}
	for _, c := range []int{0, 1, schemas.LogAttributes} {
		if cols[c] != nil {
			t.Errorf("column %d rebuilt", c)
		}
	}

	// Only the columns of what are rebuilt.
	cols = make([]arrow.Array, st.b.Items.NumCols())
	if err := st.fieldColumns(cols, sel, chSevNum); err != nil {
		t.Fatal(err)
	}
	defer releaseAll(cols)
	if cols[schemas.LogSeverityText] != nil || cols[schemas.LogBody] != nil || cols[schemas.LogSeverityNumber] == nil {
		t.Errorf("chSevNum alone rebuilt other columns")
	}
}

// TestSpanColumns: a status message set on a span without status gives
// it status unset; an empty one does not.
func TestSpanColumns(t *testing.T) {
	tests := []struct {
		name    string
		patches map[int]patch
		names   []string
		msgs    []string
		codes   string
	}{
		{
			name:    "message on span without status",
			patches: map[int]patch{0: {res: -1, what: chText, text: "why"}},
			names:   []string{"a", "b", "c"}, msgs: []string{"why", "", "boom"}, codes: "[0 1 2]",
		},
		{
			name:    "empty message on span without status",
			patches: map[int]patch{0: {res: -1, what: chText, text: ""}, 2: {res: -1, what: chText | chName, name: "C", text: ""}},
			names:   []string{"a", "b", "C"}, msgs: []string{"", "", ""}, codes: "[(null) 1 2]",
		},
		{
			name:    "name only",
			patches: map[int]patch{1: {res: -1, what: chName, name: "B"}},
			names:   []string{"a", "B", "c"},
		},
	}
	for _, tt := range tests {
		st := stepState(t, noRules(t), tracesReq())
		setPatches(st, tt.patches)
		cols := make([]arrow.Array, st.b.Items.NumCols())
		what := st.changedFields()
		if err := st.fieldColumns(cols, []int32{0, 1, 2}, what); err != nil {
			t.Fatal(err)
		}
		if what&chName != 0 {
			if got := stringsOf(cols[schemas.SpanName]); !slices.Equal(got, tt.names) {
				t.Errorf("%s: names %v, want %v", tt.name, got, tt.names)
			}
		} else if cols[schemas.SpanName] != nil {
			t.Errorf("%s: name rebuilt", tt.name)
		}
		if what&chText == 0 {
			if cols[schemas.SpanStatusMessage] != nil || cols[schemas.SpanStatusCode] != nil {
				t.Errorf("%s: status rebuilt", tt.name)
			}
		} else {
			if got := stringsOf(cols[schemas.SpanStatusMessage]); !slices.Equal(got, tt.msgs) {
				t.Errorf("%s: messages %v, want %v", tt.name, got, tt.msgs)
			}
			if got := cols[schemas.SpanStatusCode].String(); got != tt.codes {
				t.Errorf("%s: codes %s, want %s", tt.name, got, tt.codes)
			}
		}
		releaseAll(cols)
	}
}

// TestCountKept: when items are only dropped, countKept gives the counts
// countItems gives on the remapped items, and build's output is the
// reference's: random batches of every signal, random rows dropped (some
// parents emptied, some not).
func TestCountKept(t *testing.T) {
	for _, sig := range otlpwire.Signals {
		for seed := range 30 {
			r := rand.New(rand.NewPCG(uint64(seed), uint64(sig)+91))
			st := stepState(t, noRules(t), gen(sig, r))
			if err := st.itemInputs(); err != nil {
				t.Fatal(err)
			}
			var pp, want parents
			if err := st.parentLinks(&pp); err != nil {
				t.Fatal(err)
			}
			if err := st.parentLinks(&want); err != nil {
				t.Fatal(err)
			}
			rate := r.IntN(4) // 0: nothing dropped
			for i := range st.n {
				st.drop[i] = rate > 0 && r.IntN(4) < rate
				st.patchOf[i] = -1
			}
			ip := st.remapItems(&want, st.keptRows())
			st.countItems(&want, &ip)
			wantHad := slices.Concat(want.res.had, want.scope.had, want.met.had)
			wantHas := slices.Concat(want.res.has, want.scope.has, want.met.has)
			st.countKept(&pp)
			gotHad := slices.Concat(pp.res.had, pp.scope.had, pp.met.had)
			gotHas := slices.Concat(pp.res.has, pp.scope.has, pp.met.has)
			if !slices.Equal(gotHad, wantHad) || !slices.Equal(gotHas, wantHas) {
				t.Fatalf("%v/%d: had %v has %v, want %v %v", sig, seed, gotHad, gotHas, wantHad, wantHas)
			}
		}
	}
}
