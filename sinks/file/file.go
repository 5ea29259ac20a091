// Package file is the `file` sink: newline-delimited OTLP/JSON, one
// Export*ServiceRequest per line (one per processed record: an Arrow batch
// is turned back into OTLP), one file per signal. The active file of a
// signal is <path>/<signal>.jsonl (so `tail -f` follows it); when it grows
// past max_file_bytes it is renamed to <signal>-<UTC time>.jsonl and a new
// one is started, and the oldest rotated files beyond max_files are removed.
//
// Write returns after the lines are written and fsynced, so a committed
// position never points past data that is not on disk. A crash between the
// fsync and the commit repeats the last batch (at least once); a line cut
// short by a crash is removed when the file is opened again.
package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpjson"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/stream"
)

func init() {
	sinks.Register("file", func(entry *config.Sink, env sinks.Env) (sinks.Sink, error) {
		cfg := Config{MaxFileBytes: 256 << 20}
		if err := entry.Decode(&cfg); err != nil {
			return nil, err
		}
		if cfg.Path == "" {
			return nil, entry.Errorf("path", "the file sink needs a path (a directory)")
		}
		return New(cfg, env.Logger)
	})
}

// Config is the file sink's part of a sinks entry.
type Config struct {
	// Path is the directory the files are written to; created if missing.
	Path string `yaml:"path"`
	// MaxFileBytes rotates a signal's file once it is larger. 0 never
	// rotates. Default 256MiB.
	MaxFileBytes config.ByteSize `yaml:"max_file_bytes"`
	// MaxFiles keeps at most this many rotated files per signal, removing
	// the oldest. 0 keeps all.
	MaxFiles int `yaml:"max_files"`
}

// Sink writes OTLP/JSON lines.
type Sink struct {
	cfg   Config
	log   *slog.Logger
	files [len(otlpwire.Signals)]*os.File
	sizes [len(otlpwire.Signals)]int64
	buf   []byte
	pb    []byte
	now   func() time.Time
}

// New creates the directory and returns the sink. Files are opened on first
// use.
func New(cfg Config, log *slog.Logger) (*Sink, error) {
	if err := os.MkdirAll(cfg.Path, 0o755); err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{cfg: cfg, log: log, now: time.Now}, nil
}

// Write appends one line per record to its signal's file, then fsyncs the
// files it wrote to.
func (s *Sink) Write(_ context.Context, recs []*stream.Record) error {
	var touched [len(otlpwire.Signals)]bool
	for _, r := range recs {
		sig, err := sinks.SignalOf(r)
		if err != nil {
			return err
		}
		pb, err := s.otlp(r)
		if err != nil {
			return err
		}
		s.buf, err = otlpjson.MarshalRequest(sig, pb, s.buf[:0])
		if err != nil {
			return fmt.Errorf("file sink: record %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		s.buf = append(s.buf, '\n')
		f, err := s.file(sig)
		if err != nil {
			return err
		}
		if _, err := f.Write(s.buf); err != nil {
			return fmt.Errorf("file sink: %w", err)
		}
		s.sizes[sig] += int64(len(s.buf))
		touched[sig] = true
	}
	for sig, ok := range touched {
		if !ok {
			continue
		}
		if err := s.files[sig].Sync(); err != nil {
			return fmt.Errorf("file sink: %w", err)
		}
		if max := int64(s.cfg.MaxFileBytes); max > 0 && s.sizes[sig] >= max {
			if err := s.rotate(otlpwire.Signal(sig)); err != nil {
				return err
			}
		}
	}
	return nil
}

// otlp returns the OTLP protobuf encoding of r's value: as it is, or
// converted from Arrow.
func (s *Sink) otlp(r *stream.Record) ([]byte, error) {
	switch ct := string(r.Header(stream.HeaderContentType)); ct {
	case stream.ContentTypeOTLPProto, "":
		return r.Value, nil
	case stream.ContentTypeArrow:
		var err error
		if s.pb, _, err = schemas.BatchToOTLP(r.Value, s.pb[:0], arrowpool.Default); err != nil {
			return nil, fmt.Errorf("file sink: record %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		return s.pb, nil
	default:
		return nil, fmt.Errorf("file sink: record %s/%d@%d has content type %q (valid: %s, %s)", r.Topic, r.Partition, r.Offset, ct, stream.ContentTypeOTLPProto, stream.ContentTypeArrow)
	}
}

// file returns the open file of sig, opening it and cutting off a partial
// last line left by a crash.
func (s *Sink) file(sig otlpwire.Signal) (*os.File, error) {
	if f := s.files[sig]; f != nil {
		return f, nil
	}
	name := filepath.Join(s.cfg.Path, sig.String()+".jsonl")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	size, err := completeLines(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("file sink: %s: %w", name, err)
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("file sink: %w", err)
	}
	s.files[sig], s.sizes[sig] = f, size
	return f, nil
}

// completeLines truncates f after its last newline and returns the new size.
func completeLines(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	var b [4096]byte
	end := size
	for end > 0 {
		n := min(end, int64(len(b)))
		if _, err := f.ReadAt(b[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(b[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end < size {
		if err := f.Truncate(end); err != nil {
			return 0, err
		}
	}
	return end, nil
}

func (s *Sink) rotate(sig otlpwire.Signal) error {
	f := s.files[sig]
	s.files[sig], s.sizes[sig] = nil, 0
	if err := f.Close(); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	name := filepath.Join(s.cfg.Path, sig.String()+".jsonl")
	rotated := filepath.Join(s.cfg.Path, fmt.Sprintf("%s-%s.jsonl", sig, s.now().UTC().Format("20060102T150405.000000000Z")))
	if err := os.Rename(name, rotated); err != nil {
		return fmt.Errorf("file sink: rotating: %w", err)
	}
	s.log.Info("rotated file", "file", rotated)
	if s.cfg.MaxFiles <= 0 {
		return nil
	}
	old, err := filepath.Glob(filepath.Join(s.cfg.Path, sig.String()+"-*.jsonl"))
	if err != nil {
		return nil
	}
	slices.Sort(old) // the time in the name sorts oldest first
	for len(old) > s.cfg.MaxFiles {
		if err := os.Remove(old[0]); err != nil {
			s.log.Warn("removing an old file", "file", old[0], "err", err)
		}
		old = old[1:]
	}
	return nil
}

// Close closes the open files.
func (s *Sink) Close() error {
	var errs []error
	for i, f := range s.files {
		if f != nil {
			errs = append(errs, f.Close())
			s.files[i] = nil
		}
	}
	return errors.Join(errs...)
}
