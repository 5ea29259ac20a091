package cardinality

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// WriteText writes r as tables for people, one per tenant:
//
//	tenant acme: 12,400 active series before the rules, 1,210 after (-90.2%)
//	METRIC                         BEFORE  AFTER  TOP LABELS (distinct values before → after)
//	http.server.request.duration   10,000    100  k8s.pod.name 1,000→0, http.route 10→10
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	if len(r.Tenants) == 0 {
		b.WriteString("no active series\n")
	}
	for i, tr := range r.Tenants {
		if i > 0 {
			b.WriteByte('\n')
		}
		writeTenant(&b, &tr)
	}
	if r.DroppedBatches > 0 {
		fmt.Fprintf(&b, "\nnot tracked (tenants beyond the limit): %s batches, %s points\n", num(r.DroppedBatches), num(r.DroppedPoints))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeTenant(b *strings.Builder, tr *TenantReport) {
	fmt.Fprintf(b, "tenant %s: %s active series before the rules, %s after%s\n",
		tr.Tenant, num(tr.SeriesBefore), num(tr.SeriesAfter), change(tr.SeriesBefore, tr.SeriesAfter))
	type row struct{ name, before, after, labels string }
	rows := []row{{"METRIC", "BEFORE", "AFTER", "TOP LABELS (distinct values before → after)"}}
	for _, m := range tr.Metrics {
		var ls []string
		for _, l := range m.Labels {
			ls = append(ls, fmt.Sprintf("%s %s→%s", l.Key, num(l.ValuesBefore), num(l.ValuesAfter)))
		}
		if m.LabelsTruncated {
			ls = append(ls, "(more keys, not counted)")
		}
		rows = append(rows, row{m.Name, num(m.SeriesBefore), num(m.SeriesAfter), strings.Join(ls, ", ")})
	}
	if o := tr.Other; o != nil {
		rows = append(rows, row{fmt.Sprintf("(%s other metrics)", num(max(o.MetricsBefore, o.MetricsAfter))),
			num(o.SeriesBefore), num(o.SeriesAfter), "(not tracked by name)"})
	}
	var wn, wb, wa int
	for _, r := range rows {
		wn, wb, wa = max(wn, len(r.name)), max(wb, len(r.before)), max(wa, len(r.after))
	}
	for _, r := range rows {
		line := fmt.Sprintf("%-*s  %*s  %*s  %s", wn, r.name, wb, r.before, wa, r.after, r.labels)
		b.WriteString(strings.TrimRight(line, " "))
		b.WriteByte('\n')
	}
}

// change is the relative change from before to after, e.g. " (-90.2%)".
func change(before, after uint64) string {
	if before == 0 {
		return ""
	}
	return fmt.Sprintf(" (%+.1f%%)", (float64(after)-float64(before))/float64(before)*100)
}

// num formats n with thousands separators.
func num(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	first := len(s) % 3
	if first > 0 {
		b.WriteString(s[:first])
	}
	for i := first; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}
