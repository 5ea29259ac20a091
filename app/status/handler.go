package status

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/stream/cardinality"
)

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"num":       formatAny,
	"rate":      formatRate,
	"lag":       func(v *float64) string { return formatRate(v) },
	"duration":  formatDuration,
	"clock":     func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"join":      strings.Join,
	"labels":    labelSummary,
	"pct":       percentChange,
	"columns":   func() []string { return columns },
	"colTitle":  func(c string) string { return columnTitles[c] },
	"badColumn": func(c string) bool { return c == "errors" || c == "dead_letters" },
	"positive":  func(v *float64) bool { return v != nil && *v > 0 },
	"numberOf": func(s StageStatus, c string) *Number {
		if n, ok := s.Numbers[c]; ok {
			return &n
		}
		return nil
	},
	"ruleColumns": func() []string {
		return []string{"matched", "dropped", "changed", "errors"}
	},
}).Parse(pageHTML))

// columns are a stage's numbers, in the order of the page's table.
var columns = []string{"in", "out", "errors", "dead_letters"}

var columnTitles = map[string]string{"in": "items in", "out": "items out", "errors": "errors", "dead_letters": "dead letters"}

// Page serves the HTML page.
func (s *Server) Page() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Status(r.Context())
		if err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		var buf bytes.Buffer
		if err := page.Execute(&buf, struct {
			*Status
			IntervalMillis int64
		}{st, s.opts.Interval.Milliseconds()}); err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		// Nothing from elsewhere: the page's own inline script and style,
		// and fetches of this server only.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Write(buf.Bytes())
	})
}

// API serves the status as JSON.
func (s *Server) API() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Status(r.Context())
		if err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		enc.Encode(st)
	})
}

// formatNumber writes a number as the page's script does: whole numbers
// with thousands separators, others as they are (at most the digits
// formatRate left).
func formatNumber(v float64) string {
	if v != math.Trunc(v) || math.Abs(v) >= 1e15 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	s := strconv.FormatInt(int64(math.Abs(v)), 10)
	var b strings.Builder
	if v < 0 {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// formatAny is formatNumber of the template's numbers.
func formatAny(v any) string {
	switch v := v.(type) {
	case float64:
		return formatNumber(v)
	case uint64:
		return formatNumber(float64(v))
	case int:
		return formatNumber(float64(v))
	}
	return fmt.Sprint(v)
}

// formatRate writes a rate per second as the page's script does ("–"
// while there is none yet): two decimals under 10, one under 100, none
// above.
func formatRate(v *float64) string {
	if v == nil {
		return "–"
	}
	return formatNumber(roundRate(*v))
}

func roundRate(v float64) float64 {
	switch a := math.Abs(v); {
	case a >= 100:
		return math.Round(v)
	case a >= 10:
		return math.Round(v*10) / 10
	}
	return math.Round(v*100) / 100
}

func formatDuration(seconds float64) string {
	d := time.Duration(seconds) * time.Second
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd %dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm %ds", d/time.Minute, d%time.Minute/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// labelSummary is a metric's labels as `sluice cardinality` prints them:
// "pod 30→0, route 2→2".
func labelSummary(ls []cardinality.LabelReport) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%s %d→%d", l.Key, l.ValuesBefore, l.ValuesAfter)
	}
	return strings.Join(parts, ", ")
}

// percentChange is after against before, e.g. "-93.3%".
func percentChange(before, after uint64) string {
	if before == 0 {
		return ""
	}
	return fmt.Sprintf("%+.1f%%", (float64(after)-float64(before))/float64(before)*100)
}
