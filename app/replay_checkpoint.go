package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/stream"
)

// checkpoint is a replay's progress on disk: what it replays and, per
// topic, the next position of each partition and the end of its range.
type checkpoint struct {
	Version  int                 `json:"version"`
	Sink     string              `json:"sink"`
	Topic    string              `json:"topic"`
	Signals  []string            `json:"signals"`
	From     time.Time           `json:"from,omitzero"`
	To       time.Time           `json:"to,omitzero"`
	RulesDir string              `json:"rules_dir"`
	DryRun   bool                `json:"dry_run"`
	Ranges   map[string]*ckRange `json:"ranges"`
}

// ckRange is one topic's range: Next moves as the sink takes records.
type ckRange struct {
	Next stream.Positions `json:"next"`
	To   stream.Positions `json:"to"`
	// ByTime: the positions span the partitions (NATS) and the range
	// ends at the first record at or after the replay's To.
	ByTime bool `json:"by_time,omitempty"`
}

// matches tells why a checkpoint does not belong to the replay asked for.
func (c *checkpoint) matches(want *checkpoint) error {
	var diff []string
	if c.Sink != want.Sink {
		diff = append(diff, fmt.Sprintf("sink %q, not %q", c.Sink, want.Sink))
	}
	if c.Topic != want.Topic {
		diff = append(diff, fmt.Sprintf("topic %s, not %s", c.Topic, want.Topic))
	}
	if !slices.Equal(c.Signals, want.Signals) {
		diff = append(diff, fmt.Sprintf("signals %v, not %v", c.Signals, want.Signals))
	}
	if !c.From.Equal(want.From) || !c.To.Equal(want.To) {
		diff = append(diff, fmt.Sprintf("range %s to %s, not %s to %s (with --resume, leave --from and --to out to take the checkpoint's)", stamp(c.From), stamp(c.To), stamp(want.From), stamp(want.To)))
	}
	if c.RulesDir != want.RulesDir {
		diff = append(diff, fmt.Sprintf("rules %q, not %q", c.RulesDir, want.RulesDir))
	}
	if c.DryRun != want.DryRun {
		diff = append(diff, fmt.Sprintf("dry run %v, not %v", c.DryRun, want.DryRun))
	}
	if len(diff) > 0 {
		return fmt.Errorf("the checkpoint is of another replay (%s): run it without --resume to start over", strings.Join(diff, "; "))
	}
	return nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "(none)"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func readCheckpoint(path string) (*checkpoint, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("replay: no checkpoint to resume from at %s", path)
	}
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	var c checkpoint
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("replay: checkpoint %s: %w", path, err)
	}
	if c.Version != 1 {
		return nil, fmt.Errorf("replay: checkpoint %s: version %d, not 1", path, c.Version)
	}
	return &c, nil
}

// write replaces the file at path with c, atomically (a temporary file
// renamed over it).
func (c *checkpoint) write(path string) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// maxAgeWarnings says, when data from from onwards is older than the
// sink's max_age, what the backend will do with it and what to change.
func maxAgeWarnings(entry *config.Sink, from time.Time, now time.Time) []string {
	if entry.MaxAge <= 0 || from.IsZero() || now.Sub(from) <= entry.MaxAge {
		return nil
	}
	w := fmt.Sprintf("sink %s: the range starts %s ago, beyond its max_age (%s): the %s backend refuses or drops what is older",
		entry.Name, now.Sub(from).Round(time.Second), entry.MaxAge, entry.Type)
	switch entry.Type {
	case "prometheus_remote_write":
		w += "; raise Prometheus's storage.tsdb.out_of_order_time_window (Mimir: the tenant's out_of_order_time_window, and past_grace_period where set) above the range's age, then max_age"
	case "loki":
		w += "; Loki takes per stream only lines newer than its newest line minus max_chunk_age/2 (1h by default) and refuses lines older than reject_old_samples_max_age: replay into streams that hold no newer lines, or raise those settings, then max_age"
	default:
		w += "; raise the backend's limit on old data, then max_age"
	}
	return []string{w}
}
