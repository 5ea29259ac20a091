package nats

import (
	"errors"
	"testing"

	"github.com/sluice-dev/sluice/stream"
)

// A second server on a data directory in use fails, naming the cause,
// and leaves the first alone; once the first is closed, the directory opens.
func TestEmbeddedLocksItsDataDir(t *testing.T) {
	dir := t.TempDir()
	first, err := NewEmbedded(EmbeddedConfig{DataDir: dir}, Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := NewEmbedded(EmbeddedConfig{DataDir: dir}, Config{Logger: testLogger(t)}); !errors.Is(err, ErrDataDirInUse) {
		if b != nil {
			b.Close()
		}
		t.Fatalf("second server on %s: %v, want ErrDataDirInUse", dir, err)
	}
	ensure(t, first, stream.TopicSpec{Name: "still", Partitions: 1})
	first.Close()
	again := openEmbedded(t, dir, Config{})
	infos, err := again.DescribeTopics(t.Context(), "still")
	if err != nil || !infos[0].Exists {
		t.Fatalf("after the first server closed, its topic: %+v, %v", infos, err)
	}
}
