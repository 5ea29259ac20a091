package nats

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-dev/sluice/stream"
)

// consumedBefore writes 10 records r0..r9 to topic "odat" in dir, lets
// group g commit r0..r3 (ack floor: stream sequence 4) and stops cleanly.
// It returns the group's consumer directory in the store.
func consumedBefore(t *testing.T, dir string) string {
	t.Helper()
	b := openEmbedded(t, dir, Config{})
	ensure(t, b, stream.TopicSpec{Name: "odat", Partitions: 1})
	produce(t, b, values("odat", "r", 10)...)
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{"odat"}})
	commit(t, c, pollN(t, c, 10, 5*time.Second)[:4]...)
	b.Close()
	return filepath.Join(dir, "jetstream", "$G", "streams", "odat", "obs", "g")
}

// restarted starts the bus on dir again with a registry and the
// warnings in a buffer. Records delivered and not committed before the
// stop come again after its AckWait.
func restarted(t *testing.T, dir string) (*Bus, *prometheus.Registry, *logBuffer, error) {
	t.Helper()
	reg := prometheus.NewRegistry()
	logs := &logBuffer{}
	b, err := NewEmbedded(EmbeddedConfig{DataDir: dir, Registerer: reg},
		Config{AckWait: time.Second, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err == nil {
		t.Cleanup(func() { b.Close() })
	}
	return b, reg, logs, err
}

// groupGets returns the values group g receives on "odat", exactly want
// of them and none after.
func groupGets(t *testing.T, b *Bus, want int) []string {
	t.Helper()
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{"odat"}})
	recs := pollN(t, c, want, 10*time.Second)
	commit(t, c, recs...)
	pollNone(t, c, 300*time.Millisecond)
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Value))
	}
	return got
}

// resetsCounted returns sluice_bus_positions_reset_total{stream="odat",consumer="g"}.
func resetsCounted(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	n, err := testutil.GatherAndCount(reg, "sluice_bus_positions_reset_total")
	if err != nil || n == 0 {
		return 0
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == "sluice_bus_positions_reset_total" {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["stream"] == "odat" && labels["consumer"] == "g" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func rs(from, to int) []string {
	var v []string
	for i := from; i <= to; i++ {
		v = append(v, "r"+string(rune('0'+i)))
	}
	return v
}

// A group's consumer state lost or changed on disk while sluice was
// stopped (cleanly) is reported at start: a warning naming the stream, the
// consumer, the file and both positions, and
// sluice_bus_positions_reset_total. Items in and out: 10 written, r0..r3
// committed before the stop; what the group gets after is what nats-server
// makes of the damage.
func TestEmbeddedConsumerStateDamaged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, consumerDir string)
		warn   []string // in one warning line
		get    []string
	}{
		{
			"o.dat emptied: all again",
			func(t *testing.T, d string) { write(t, filepath.Join(d, "o.dat"), nil) },
			[]string{"position went back", "recorded_ack_floor=4", "ack_floor=0", "delivered_again_from=1", "delivered_again_to=4"},
			rs(0, 9),
		},
		{
			"o.dat removed: all again",
			func(t *testing.T, d string) { remove(t, filepath.Join(d, "o.dat")) },
			[]string{"position went back", "recorded_ack_floor=4", "ack_floor=0"},
			rs(0, 9),
		},
		{
			// Magic, version 2, ack floor (consumer, stream) 1 1,
			// delivered 1 1, nothing pending or redelivered.
			"o.dat reads behind: duplicates",
			func(t *testing.T, d string) { write(t, filepath.Join(d, "o.dat"), []byte{0x16, 2, 1, 1, 1, 1, 0, 0}) },
			[]string{"position went back", "recorded_ack_floor=4", "ack_floor=1", "delivered_again_from=2", "delivered_again_to=4"},
			rs(1, 9),
		},
		{
			"o.dat reads ahead: records skipped",
			func(t *testing.T, d string) { write(t, filepath.Join(d, "o.dat"), []byte{0x16, 2, 8, 8, 8, 8, 0, 0}) },
			[]string{"position went forward", "recorded_ack_floor=4", "ack_floor=8", "skipped_from=5", "skipped_to=8"},
			rs(8, 9),
		},
		{
			"consumer directory removed: created again from the start",
			func(t *testing.T, d string) { removeAll(t, d) },
			[]string{"consumer is gone", "recorded_ack_floor=4"},
			rs(0, 9),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			consumerDir := consumedBefore(t, dir)
			tc.damage(t, consumerDir)
			b, reg, logs, err := restarted(t, dir)
			if err != nil {
				t.Fatal(err)
			}
			line := warning(logs, tc.warn[0])
			for _, want := range append(tc.warn, "stream=odat", "consumer=g", "recorded_delivered=10", consumerDir) {
				if !strings.Contains(line, want) {
					t.Errorf("no warning saying %q:\n%s", want, logs.String())
				}
			}
			if n := resetsCounted(t, reg); n != 1 {
				t.Errorf("sluice_bus_positions_reset_total = %v, want 1", n)
			}
			if got := groupGets(t, b, len(tc.get)); !slices.Equal(got, tc.get) {
				t.Errorf("group got %v, want %v", got, tc.get)
			}
		})
	}
}

// An o.dat nats-server cannot decode stops the start with an error naming
// the consumer's directory: nats-server leaves the consumer out and cannot
// create it again, so the group could never consume. Moved aside, the
// group starts over, and that is reported. Items in and out: 10 written,
// r0..r3 committed; after the repair the group gets all 10.
func TestEmbeddedConsumerStateUnreadable(t *testing.T) {
	dir := t.TempDir()
	consumerDir := consumedBefore(t, dir)
	odat := filepath.Join(consumerDir, "o.dat")
	data, err := os.ReadFile(odat)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] ^= 0x5a
	}
	write(t, odat, data)

	_, _, _, err = restarted(t, dir)
	if err == nil {
		t.Fatal("started with an unreadable consumer state")
	}
	for _, want := range []string{consumerDir, "corrupt state file", "move it out of the store"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	// The operator moves it aside.
	if err := os.Rename(consumerDir, filepath.Join(dir, "g.damaged")); err != nil {
		t.Fatal(err)
	}
	b, reg, logs, err := restarted(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if line := warning(logs, "consumer is gone"); !strings.Contains(line, "consumer=g") {
		t.Errorf("no warning of the group's consumer gone:\n%s", logs.String())
	}
	if n := resetsCounted(t, reg); n != 1 {
		t.Errorf("sluice_bus_positions_reset_total = %v, want 1", n)
	}
	if got, want := groupGets(t, b, 10), rs(0, 9); !slices.Equal(got, want) {
		t.Errorf("group got %v, want %v", got, want)
	}
}

// The control: a clean restart reports nothing and the group resumes
// after its commits. Items in and out: 10 written, r0..r3 committed, r4..r9
// come after the restart.
func TestEmbeddedConsumerStateIntact(t *testing.T) {
	dir := t.TempDir()
	consumedBefore(t, dir)
	b, reg, logs, err := restarted(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if s := logs.String(); s != "" {
		t.Errorf("warnings after a clean restart:\n%s", s)
	}
	if n, err := testutil.GatherAndCount(reg, "sluice_bus_positions_reset_total"); err != nil || n != 0 {
		t.Errorf("sluice_bus_positions_reset_total: %d series (%v), want none", n, err)
	}
	if got, want := groupGets(t, b, 6), rs(4, 9); !slices.Equal(got, want) {
		t.Errorf("group got %v, want %v", got, want)
	}
}

// Records that age out (retention) while sluice is stopped move the
// group's consumer up to the first record left at the next start: not
// damage, and not reported. Items in and out: 10 written with a retention
// of 1s, r0..r3 committed; none left after 2s stopped.
func TestEmbeddedConsumerStateAgedOut(t *testing.T) {
	dir := t.TempDir()
	b := openEmbedded(t, dir, Config{})
	ensure(t, b, stream.TopicSpec{Name: "odat", Partitions: 1, Retention: time.Second})
	produce(t, b, values("odat", "r", 10)...)
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{"odat"}})
	commit(t, c, pollN(t, c, 10, 5*time.Second)[:4]...)
	b.Close()
	time.Sleep(2 * time.Second) // the records' age passes retention while stopped

	b2, reg, logs, err := restarted(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if s := logs.String(); s != "" {
		t.Errorf("warnings after records aged out:\n%s", s)
	}
	if n, err := testutil.GatherAndCount(reg, "sluice_bus_positions_reset_total"); err != nil || n != 0 {
		t.Errorf("sluice_bus_positions_reset_total: %d series (%v), want none", n, err)
	}
	c2 := consume(t, b2, stream.ConsumerConfig{Group: "g", Topics: []string{"odat"}})
	pollNone(t, c2, 1500*time.Millisecond) // past AckWait: nothing pending comes again
}

// After a stop that was not clean (no marker: a crash) the record is not
// compared: a crash leaves it behind the consumers, and a group may have
// been recreated while the process ran. nats-server's reset of an emptied
// o.dat then goes unreported, as before. Items in and out: 10 written,
// r0..r3 committed, all 10 come again.
func TestEmbeddedConsumerStateAfterCrash(t *testing.T) {
	dir := t.TempDir()
	consumerDir := consumedBefore(t, dir)
	remove(t, filepath.Join(dir, cleanShutdownFile))
	write(t, filepath.Join(consumerDir, "o.dat"), nil)
	b, reg, logs, err := restarted(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if line := warning(logs, "position"); line != "" {
		t.Errorf("compared with a stale record: %s", line)
	}
	if n, err := testutil.GatherAndCount(reg, "sluice_bus_positions_reset_total"); err != nil || n != 0 {
		t.Errorf("sluice_bus_positions_reset_total: %d series (%v), want none", n, err)
	}
	if got, want := groupGets(t, b, 10), rs(0, 9); !slices.Equal(got, want) {
		t.Errorf("group got %v, want %v", got, want)
	}
}

// warning returns the first warning line of logs that contains s.
func warning(logs *logBuffer, s string) string {
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func removeAll(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
}
