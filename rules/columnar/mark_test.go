package columnar

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/schemas"
)

// markRules are metric rules that mark points (aggregate, limit, and
// identity changes) mixed with rules that drop, so that output rows and
// input rows differ.
var markRules = []string{
	`when: attributes["k0"] == "a"
    drop: true`,
	`when: value < 20
    aggregate: {without: [k1, service.name], gauge: sum}`,
	`delete: ['attributes["k3"]']`,
	`when: type == "gauge"
    limit: {max_series: 5}`,
	`when: scope.name == "s1"
    aggregate: {by: [route], interval: 10s}`,
	`sample: 0.5`,
}

// TestApplyMarked checks the marks of ApplyMarked against the rules
// applied to each point on its own (refMetricsMarks), on random batches
// and rule sets, with the memo on (repetitive rows) and off.
func TestApplyMarked(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 40
	}
	marked := 0
	for seed := range n {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		idx := r.Perm(len(markRules))[:1+r.IntN(len(markRules))]
		var y string
		for k, i := range idx {
			y += fmt.Sprintf("  - name: r%d\n    signal: metrics\n    %s\n", k, markRules[i])
		}
		set := parse(t, "rules:\n"+y)
		req := genMetrics(r)
		if seed%2 == 0 { // repeat the points: the memo replays marks
			req.ResourceMetrics = append(req.ResourceMetrics, proto.Clone(req).(*colmetrics.ExportMetricsServiceRequest).ResourceMetrics...)
		}
		_, want := refMetricsMarks(set, req)
		got := applyMarked(t, set, req)
		gotMarks := marksPerRow(got, len(want))
		if !slices.Equal(gotMarks, want) {
			t.Fatalf("seed %d, rules\n%s\nmarks per kept point:\n got %v\nwant %v", seed, y, gotMarks, want)
		}
		marked += len(got)
	}
	if marked == 0 {
		t.Fatal("no point was marked: the test checks nothing")
	}
}

// applyMarked runs ApplyMarked on req and checks that each Marked's Orig
// is the input row of its output row.
func applyMarked(t *testing.T, set *rules.Set, req *colmetrics.ExportMetricsServiceRequest) []Marked {
	t.Helper()
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	bl := schemas.NewBuilder(otlpwire.Metrics, memory.DefaultAllocator)
	defer bl.Release()
	if _, err := bl.Append(body); err != nil {
		t.Fatal(err)
	}
	in := bl.Build()
	defer in.Release()
	out, marks, err := New(set, Options{}).ApplyMarked(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		defer out.Release()
	}
	inTime := in.Items.Column(schemas.PtTimeUnixNano)
	outTime := out.Items.Column(schemas.PtTimeUnixNano)
	for _, m := range marks {
		if m.Row >= int32(out.Len()) || m.Orig >= int32(in.Len()) || m.Orig < m.Row {
			t.Fatalf("marked %+v out of range (%d in, %d out)", m, in.Len(), out.Len())
		}
		if a, b := inTime.ValueStr(int(m.Orig)), outTime.ValueStr(int(m.Row)); a != b {
			t.Fatalf("marked %+v: input time %s, output time %s: not the same point", m, a, b)
		}
	}
	return marks
}

// marksPerRow spreads the Marked of ApplyMarked over the kept rows: the
// mark of each of the first n output rows (zero for rows not marked).
func marksPerRow(got []Marked, n int) []rules.Mark {
	marks := make([]rules.Mark, n)
	for _, m := range got {
		if int(m.Row) >= len(marks) {
			marks = append(marks, make([]rules.Mark, int(m.Row)+1-len(marks))...)
		}
		marks[m.Row] = m.Mark
	}
	return marks
}
