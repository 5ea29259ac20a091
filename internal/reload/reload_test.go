package reload

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStamp(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	os.WriteFile(a, []byte("one"), 0o600)
	os.WriteFile(b, []byte("two"), 0o600)
	before := Stamp(a, b)
	if Stamp(a, b) != before || Stamp(a, "", b) != before {
		t.Error("the stamp of unchanged files changed")
	}
	os.WriteFile(a, []byte("three"), 0o600) // another size: seen whatever the mtime resolution
	changed := Stamp(a, b)
	if changed == before {
		t.Error("a file's new size left the stamp unchanged")
	}
	os.Remove(b)
	if Stamp(a, b) == changed {
		t.Error("a removed file left the stamp unchanged")
	}
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(a, link); err != nil {
		t.Skip(err)
	}
	linked := Stamp(link)
	os.WriteFile(filepath.Join(dir, "c.yaml"), []byte("a longer file"), 0o600)
	os.Remove(link)
	os.Symlink(filepath.Join(dir, "c.yaml"), link) // a Secret's update: the link moves
	if Stamp(link) == linked {
		t.Error("a link moved to another file left the stamp unchanged")
	}
}

// Run reloads with force on hup, without on the interval, and returns when
// its context ends.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan struct{})
	calls := make(chan bool)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, time.Millisecond, hup, func(force bool) { calls <- force })
	}()
	if force := <-calls; force { // the ticker's
		t.Error("a tick reloaded with force")
	}
	go func() { hup <- struct{}{} }() // Run may be sending a tick's call
	for force := range calls {        // ticks may come first
		if force {
			break
		}
	}
	cancel()
	for {
		select {
		case <-calls: // a tick taken before the end was seen
		case <-done:
			return
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return when its context ended")
		}
	}
}
