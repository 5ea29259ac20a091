package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// A write error of the embedded store (a full disk, ENOSPC; an I/O or
// permission error) is sticky in nats-server: the file store keeps the
// first error and returns it for every later write to that stream
// (fileStore.werr, server/filestore.go storeRawMsg: "Return previous write
// errors immediately"), and the stream answers no PubAck for it
// (server/stream.go processJetStreamMsg: "We don't want to respond back to
// the user"), so every publish to it times out, also after the disk has
// room again, until JetStream reopens its store. On a permission error
// nats-server disables JetStream altogether. The server undoes neither by
// itself (only a config reload that turns JetStream on again would): the
// store watch does, by restarting JetStream in the process once a probe
// write to the store's disk succeeds.

// storeWatchInterval is how often the watch asks the server for write
// errors (a read of the store's directory listing and of in-memory state).
const storeWatchInterval = time.Second

// maxRestartBackoff bounds the wait between two restarts of JetStream when
// the store keeps failing right after each (a disk that fills again at
// once).
const maxRestartBackoff = time.Minute

// storeFault is what the watch last found wrong: the streams that cannot
// be written and their errors.
type storeFault struct {
	streams map[string]string
}

// storeWatch restarts JetStream after its store failed a write, once the
// store's disk takes a probe write of probeBytes again.
type storeWatch struct {
	srv        *server.Server
	js         server.JetStreamConfig
	dir        string // EmbeddedConfig.DataDir
	probeBytes int
	log        *slog.Logger
	interval   time.Duration
}

func newStoreWatch(srv *server.Server, opts *server.Options, maxPayload int32, log *slog.Logger) *storeWatch {
	// The configuration nats-server's Start gives JetStream (server.go).
	js := server.JetStreamConfig{
		StoreDir:     opts.StoreDir,
		SyncInterval: opts.SyncInterval,
		SyncAlways:   opts.SyncAlways,
		Strict:       !opts.NoJetStreamStrict,
		MaxMemory:    opts.JetStreamMaxMemory,
		MaxStore:     opts.JetStreamMaxStore,
		Domain:       opts.JetStreamDomain,
		CompressOK:   true,
		UniqueTag:    opts.JetStreamUniqueTag,
	}
	// Room for at least a few of the largest records.
	probe := 4 << 20
	if p := 4 * int(maxPayload); p > probe {
		probe = p
	}
	return &storeWatch{srv: srv, js: js, dir: opts.StoreDir, probeBytes: probe, log: log, interval: storeWatchInterval}
}

// run watches until b.done ends; it sets and clears b.fault.
func (w *storeWatch) run(b *Bus, exited chan<- struct{}) {
	defer close(exited)
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	var (
		failing     bool      // since the first error of this episode
		since       time.Time // of the episode
		restarts    int       // in this episode
		nextRestart time.Time
		backoff     = w.interval
		noted       = map[string]bool{} // streams noteUnwritten looked at in this episode
	)
	for {
		select {
		case <-b.done.Done():
			return
		case <-tick.C:
		}
		fault := w.check()
		if fault == nil {
			if failing {
				w.log.Warn("nats: embedded: the JetStream store takes writes again", "path", w.js.StoreDir,
					"failing_for", time.Since(since).Round(time.Second), "jetstream_restarts", restarts)
				failing, restarts, backoff = false, 0, w.interval
				clear(noted)
			}
			b.fault.Store(nil)
			continue
		}
		b.fault.Store(fault)
		if !failing {
			failing, since = true, time.Now()
			w.log.Error("nats: embedded: the JetStream store failed a write (a full disk, or an I/O or permission error): nats-server refuses every later write to these streams, "+
				"so ingest answers 503 and stages retry; sluice restarts JetStream once the disk takes writes again (free space, or fix the error)",
				"path", w.js.StoreDir, "streams", fault.streams)
		}
		for name := range fault.streams {
			if !noted[name] && name != "*" {
				noted[name] = true
				w.noteUnwritten(b, name)
			}
		}
		if time.Now().Before(nextRestart) {
			continue
		}
		if err := w.probe(); err != nil {
			w.log.Debug("nats: embedded: the store's disk does not take writes yet", "err", err)
			continue
		}
		restarts++
		w.log.Warn("nats: embedded: the store's disk takes writes again: restarting JetStream to reopen the store", "path", w.js.StoreDir, "restart", restarts)
		if err := w.restart(); err != nil {
			w.log.Error("nats: embedded: restarting JetStream failed; trying again", "err", err)
		} else {
			b.fault.Store(nil)
		}
		nextRestart = time.Now().Add(backoff)
		backoff = min(2*backoff, maxRestartBackoff)
	}
}

// check returns the streams the server reports write errors of, and a
// fault for JetStream disabled at run time; nil if all is well.
func (w *storeWatch) check() *storeFault {
	if !w.srv.JetStreamEnabled() {
		return &storeFault{streams: map[string]string{"*": "JetStream is disabled"}}
	}
	h := w.srv.Healthz(&server.HealthzOptions{Details: true})
	var f *storeFault
	for _, e := range h.Errors {
		if e.Type != server.HealthzErrorStream || !strings.Contains(e.Error, "write error") {
			continue
		}
		if f == nil {
			f = &storeFault{streams: map[string]string{}}
		}
		f.streams[e.Stream] = e.Error
	}
	return f
}

// probe writes probeBytes to a file beside the store, syncs and removes
// it.
func (w *storeWatch) probe() error {
	f, err := os.CreateTemp(w.dir, ".sluice-space-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	buf := make([]byte, 64<<10)
	for n := 0; n < w.probeBytes; n += len(buf) {
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// restart stops JetStream, keeping its files, and starts it again: the
// streams reopen their stores from disk, without the write error.
func (w *storeWatch) restart() error {
	if err := w.srv.ShutdownJetStream(); err != nil {
		return fmt.Errorf("shutting JetStream down: %w", err)
	}
	cfg := w.js
	if err := w.srv.EnableJetStream(&cfg); err != nil {
		return fmt.Errorf("starting JetStream in %s: %w", filepath.Join(w.js.StoreDir, server.JetStreamStoreDir), err)
	}
	return nil
}

// of returns the write error of stream while the watch knows the stream
// cannot be written; "" when it can.
func (f *storeFault) of(stream string) string {
	if f == nil {
		return ""
	}
	if e, ok := f.streams[stream]; ok {
		return e
	}
	return f.streams["*"]
}

// noteUnwritten finds the sequence a failed write may have used up: when
// the write fails, the file store can count the record's sequence as its
// last and then hold no record there (stream state first 2, last 1 after
// a failed first write). After the restart the stream goes on after it,
// and a group's consumer skips it like a record removed by age. The
// sequence is recorded on b so that the loss count leaves it out: no
// record there was ever acknowledged.
func (w *storeWatch) noteUnwritten(b *Bus, name string) {
	info, err := w.srv.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return
	}
	var last uint64
	for _, acc := range info.AccountDetails {
		for _, st := range acc.Streams {
			if st.Name == name {
				last = st.State.LastSeq
			}
		}
	}
	if last == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(b.done, 5*time.Second)
	defer cancel()
	st, err := b.js.Stream(ctx, name)
	if err != nil {
		return
	}
	if _, err := st.GetMsg(ctx, last); errors.Is(err, jetstream.ErrMsgNotFound) {
		w.log.Debug("nats: embedded: a failed write used up a stream sequence", "stream", name, "sequence", last)
		b.addUnwritten(name, last)
	}
}

// String names the failing streams and their errors, for Ping.
func (f *storeFault) String() string {
	names := make([]string, 0, len(f.streams))
	for name := range f.streams {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	for i, name := range names {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.streams[name])
	}
	return b.String()
}
