package nats

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// logBuffer collects a logger's text output.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *logBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// A store nats-server cannot open is an error naming it and what to do,
// at once, rather than a server that never becomes ready.
func TestEmbeddedStoreCannotOpen(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "jetstream")
	if err := os.WriteFile(store, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := NewEmbedded(EmbeddedConfig{DataDir: dir}, Config{Logger: testLogger(t)})
	if err == nil {
		b.Close()
		t.Fatal("started on a store that is a file")
	}
	for _, want := range []string{store, "not a directory", "move it aside"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// A damaged store file is repaired by nats-server; the bus says so at
// start, with the path, and keeps working. Items in and out: 100 in, 40
// committed before the damage, the other 60 come after it, and so do 5
// written after.
func TestEmbeddedDamagedStore(t *testing.T) {
	dir := t.TempDir()
	b := openEmbedded(t, dir, Config{})
	const topic = "damaged"
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 2})
	in := values(topic, "r", 100)
	produce(t, b, in...)
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{topic}})
	first := pollN(t, c, 100, 5*time.Second)
	commit(t, c, first[:40]...)
	b.Close()

	// Garble the stream's state file (it is rebuilt from the blocks).
	index := filepath.Join(dir, "jetstream", "$G", "streams", streamName(topic), "msgs", "index.db")
	data, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] ^= 0x5a
	}
	if err := os.WriteFile(index, data, 0o644); err != nil {
		t.Fatal(err)
	}

	var logs logBuffer
	b2, err := NewEmbedded(EmbeddedConfig{DataDir: dir}, Config{AckWait: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b2.Close() })
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, "store was damaged") {
			line = l
		}
	}
	if !strings.Contains(line, filepath.Join(dir, "jetstream")) {
		t.Errorf("no error naming the damaged store in the log:\n%s", logs.String())
	}

	ensure(t, b2, stream.TopicSpec{Name: topic, Partitions: 2})
	produce(t, b2, values(topic, "after", 5)...)
	c2 := consume(t, b2, stream.ConsumerConfig{Group: "g", Topics: []string{topic}})
	out := pollN(t, c2, 65, 10*time.Second)
	commit(t, c2, out...)
	want := valueSet(append(first[40:], values(topic, "after", 5)...))
	got := valueSet(out)
	if len(got) != len(want) {
		t.Errorf("after the repair: %d distinct records, want %d", len(got), len(want))
	}
	for v := range want {
		if got[v] != 1 {
			t.Errorf("record %s polled %d times, want 1", v, got[v])
		}
	}
}

// A full store (max_store) refuses writes with a retryable
// stream.ErrUnavailable, never a success; raised on restart, it takes
// writes again. Items in and out: every accepted record comes out once,
// none refused does.
func TestEmbeddedStoreFull(t *testing.T) {
	dir := t.TempDir()
	b, err := NewEmbedded(EmbeddedConfig{DataDir: dir, MaxStore: 64 << 10}, Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	const topic = "full"
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 1})
	value := bytes.Repeat([]byte("x"), 1000)
	rec := func(name string) *stream.Record {
		return &stream.Record{Topic: topic, Partition: -1, Value: append([]byte(name+":"), value...)}
	}
	accepted := map[string]bool{}
	var full error
	for i := 0; full == nil && i < 1000; i++ {
		name := fmt.Sprintf("a%d", i)
		if full = b.Produce(context.Background(), rec(name)); full == nil {
			accepted[name] = true
		}
	}
	if full == nil {
		t.Fatal("1000 KB went into a 64 KiB store")
	}
	if !errors.Is(full, stream.ErrUnavailable) || !stream.IsRetryable(full) || !strings.Contains(full.Error(), "insufficient resources") {
		t.Errorf("store full: %v; want a retryable stream.ErrUnavailable saying why", full)
	}
	// Still full: the next write fails too.
	if err := b.Produce(context.Background(), rec("refused")); err == nil {
		t.Error("a write succeeded in a full store")
	}
	b.Close()

	b = openEmbeddedStore(t, dir, 1<<20)
	for i := range 10 {
		name := fmt.Sprintf("b%d", i)
		if err := b.Produce(context.Background(), rec(name)); err != nil {
			t.Fatalf("after raising max_store: %v", err)
		}
		accepted[name] = true
	}
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{topic}})
	out := pollN(t, c, len(accepted), 10*time.Second)
	commit(t, c, out...)
	seen := map[string]int{}
	for _, r := range out {
		seen[string(bytes.SplitN(r.Value, []byte(":"), 2)[0])]++
	}
	for name := range accepted {
		if seen[name] != 1 {
			t.Errorf("accepted record %s came out %d times", name, seen[name])
		}
	}
	if len(seen) != len(accepted) {
		t.Errorf("%d records out, %d accepted in", len(seen), len(accepted))
	}
	t.Logf("%d accepted before the store was full, 10 after raising its limit; %d out", len(accepted)-10, len(out))
}

func openEmbeddedStore(t *testing.T, dir string, maxStore int64) *Bus {
	t.Helper()
	b, err := NewEmbedded(EmbeddedConfig{DataDir: dir, MaxStore: maxStore}, Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// openLogged opens the embedded bus on dir and returns what it logged at
// warning level and above while starting.
func openLogged(t *testing.T, dir string) (*Bus, string) {
	t.Helper()
	var logs logBuffer
	b, err := NewEmbedded(EmbeddedConfig{DataDir: dir}, Config{AckWait: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, logs.String()
}

// A message block cut short while sluice was stopped: nats-server rebuilds
// the stream from what is left and warns only that the state was outdated,
// as after a crash. After a clean shutdown that means damage: the bus logs
// an error naming the store. A clean restart without damage logs nothing.
// Items: 100 in, 40 committed; what survives of the other 60 comes out at
// most once, and 5 written after the repair come out.
func TestEmbeddedTruncatedBlock(t *testing.T) {
	dir := t.TempDir()
	b := openEmbedded(t, dir, Config{})
	const topic = "cut"
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 1})
	produce(t, b, values(topic, "r", 100)...)
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{topic}})
	first := pollN(t, c, 100, 5*time.Second)
	commit(t, c, first[:40]...)
	b.Close()

	b, logs := openLogged(t, dir)
	if logs != "" {
		t.Errorf("a clean restart logged:\n%s", logs)
	}
	b.Close()

	blocks, err := filepath.Glob(filepath.Join(dir, "jetstream", "$G", "streams", streamName(topic), "msgs", "*.blk"))
	if err != nil || len(blocks) == 0 {
		t.Fatalf("no message blocks: %v", err)
	}
	for _, blk := range blocks {
		if err := os.Truncate(blk, 100); err != nil {
			t.Fatal(err)
		}
	}
	b, logs = openLogged(t, dir)
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "store was damaged") ||
		!strings.Contains(logs, filepath.Join(dir, "jetstream")) {
		t.Errorf("no error naming the damaged store:\n%s", logs)
	}

	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 1})
	produce(t, b, values(topic, "after", 5)...)
	c = consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{topic}})
	var out []*stream.Record
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		recs, err := c.Poll(ctx)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		commit(t, c, recs...)
		out = append(out, recs...)
	}
	got := valueSet(out)
	for _, r := range first[:40] {
		if got[string(r.Value)] > 0 {
			t.Errorf("committed record %s came again", r.Value)
		}
	}
	for v, n := range got {
		if n > 1 {
			t.Errorf("record %s came %d times", v, n)
		}
	}
	for _, r := range values(topic, "after", 5) {
		if got[string(r.Value)] != 1 {
			t.Errorf("record %s written after the repair came %d times", r.Value, got[string(r.Value)])
		}
	}
	t.Logf("100 in, 40 committed before the damage; %d of the other 60 survived it", len(got)-5)
}
