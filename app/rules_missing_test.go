package app

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// take returns what was logged since the last take.
func (s *syncBuffer) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b.Reset()
	return out
}

// TestRulesDirMissingLoggedOnce: a missing rules directory (documented as
// pass-through) is logged when it starts being missing, not at every reload
// interval; its appearing and disappearing again are logged once each.
// Each Reload is what one tick of the reload interval does.
func TestRulesDirMissingLoggedOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rules")
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	reg := prometheus.NewRegistry()
	rs, err := newRuleSet(dir, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	const intervals = 5
	reloads := func() string {
		for range intervals {
			rs.Reload()
		}
		return logs.take()
	}
	count := func(logged, msg string) int { return strings.Count(logged, msg) }

	start := logs.take()
	if n := count(start, "no rules directory"); n != 1 {
		t.Errorf("at start: %d warnings of the missing directory, want 1:\n%s", n, start)
	}
	if logged := reloads(); logged != "" {
		t.Errorf("%d reloads with the directory still missing logged:\n%s", intervals, logged)
	}
	if got := testutil.ToFloat64(rs.reloads.WithLabelValues("error")); got != 0 {
		t.Errorf("a missing directory counted %v reload errors, want 0", got)
	}

	// The directory appears with a rule: loaded once, then quiet.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rule := "rules:\n  - name: drop-debug\n    signal: logs\n    when: severity_number < 9\n    drop: true\n"
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	logged := reloads()
	if count(logged, "rules directory appeared") != 1 || count(logged, "rules loaded") != 1 || strings.Contains(logged, "level=ERROR") {
		t.Errorf("the directory appearing: want one 'appeared' and one 'rules loaded', no error:\n%s", logged)
	}
	if rs.current.Load() == nil {
		t.Fatal("the rules of the directory that appeared are not in use")
	}

	// It goes away again: one warning, the set stays.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	logged = reloads()
	if count(logged, "rules directory is gone") != 1 || strings.Count(logged, "\n") != 1 {
		t.Errorf("the directory gone over %d reloads: want exactly one warning:\n%s", intervals, logged)
	}
	if rs.current.Load() == nil {
		t.Error("the rule set in use was dropped when its directory went away")
	}
	if got := testutil.ToFloat64(rs.reloads.WithLabelValues("error")); got != 0 {
		t.Errorf("a missing directory counted %v reload errors, want 0", got)
	}
}
