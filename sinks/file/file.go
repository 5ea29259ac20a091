// Package file is the `file` sink: newline-delimited OTLP/JSON, one
// Export*ServiceRequest per line (one per processed record: an Arrow batch
// is turned back into OTLP), one directory per tenant and one file per
// signal. The active file of a signal is <path>/<tenant>/<signal>.jsonl (so
// `tail -f` follows it); when it grows past max_file_bytes it is renamed to
// <signal>-<UTC time>.jsonl and a new one is started, and the oldest rotated
// files beyond max_files are removed. The tenant's directory name is the
// tenant itself, a valid tenant name (internal/tenant), which cannot name a
// path outside its own directory; a record whose tenant is not valid is
// refused (dead-lettered), and records without a tenant go to "@none",
// which no tenant's name can be. Files are created 0640 and directories 0750 (less the umask):
// telemetry is not for every local user.
//
// Write returns after the lines are written and fsynced, so a committed
// position never points past data that is not on disk. A Write that fails
// (a full disk) cuts every file it wrote to back to where it was before, so
// the retry appends after complete lines only and nothing is written twice.
// A crash between the fsync and the commit repeats the last batch (at least
// once); a line cut short by a crash is removed when the file is opened
// again. The directory is fsynced after a file is created, renamed or
// removed, so a crash does not lose the file's name.
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
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpjson"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/sinkmetrics"
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
		s, err := New(cfg, env.Logger)
		if err != nil {
			return nil, err
		}
		s.sent = sinkmetrics.New(env.Registerer).For(entry.Name).ItemsSent
		return s, nil
	})
}

// Config is the file sink's part of a sinks entry.
type Config struct {
	// Path is the directory the files are written to; created if missing.
	Path string `yaml:"path"`
	// MaxFileBytes rotates a signal's file once it is larger. 0 never
	// rotates. Default 256MiB.
	MaxFileBytes config.ByteSize `yaml:"max_file_bytes"`
	// MaxFiles keeps at most this many rotated files per tenant and
	// signal, removing the oldest. 0 keeps all.
	MaxFiles int `yaml:"max_files"`
}

// Modes of what the sink creates (less the umask).
const (
	fileMode = 0o640
	dirMode  = 0o750
)

// file is what the sink needs of an open file: *os.File, or in tests a
// wrapper that fails as a full disk does.
type file interface {
	io.Writer
	io.ReaderAt
	io.Seeker
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Close() error
}

// active is the active file of one tenant and signal.
type active struct {
	f    file
	size int64 // bytes of complete lines written
}

type streamKey struct {
	dir string // the tenant's directory
	sig otlpwire.Signal
}

// Sink writes OTLP/JSON lines.
type Sink struct {
	cfg   Config
	log   *slog.Logger
	files map[streamKey]*active
	sent  prometheus.Counter // sluice_sink_items_sent_total; nil: not counted
	buf   []byte
	pb    []byte
	now   func() time.Time
	// openFile opens a file: os.OpenFile, replaced in tests to inject
	// write errors.
	openFile func(name string, flag int, perm os.FileMode) (file, error)
	// step, when set, is called at each step of a rotation ("closed",
	// "renamed", "removed"): tests kill the process there.
	step func(string)
}

func (s *Sink) stepDone(name string) {
	if s.step != nil {
		s.step(name)
	}
}

// New creates the directory and returns the sink. Files are opened on first
// use.
func New(cfg Config, log *slog.Logger) (*Sink, error) {
	if err := os.MkdirAll(cfg.Path, dirMode); err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{cfg: cfg, log: log, now: time.Now, files: map[streamKey]*active{},
		openFile: func(name string, flag int, perm os.FileMode) (file, error) { return os.OpenFile(name, flag, perm) }}, nil
}

// noTenant is the directory of records without a tenant: '@' is in no
// tenant name, so no tenant can write there.
const noTenant = "@none"

// tenantDir is the directory name of r's tenant: the tenant itself, which
// stream.Record.Tenant has checked is a valid tenant name (internal/tenant:
// at most 150 of letters, digits and !-_.*'(), neither "." nor "..", so a
// name inside path that no other tenant shares), or noTenant.
func tenantDir(r *stream.Record) (string, error) {
	tenant, err := r.Tenant()
	if err != nil || tenant == "" {
		return noTenant, err
	}
	return tenant, nil
}

// Write appends one line per record to its tenant's and signal's file,
// then fsyncs the files it wrote to. On failure it cuts those files back to
// their size before the Write.
func (s *Sink) Write(_ context.Context, recs []*stream.Record) error {
	good := map[*active]int64{} // the files written to, and their size before
	var rejected []*stream.Record
	var reason string
	var items int64
	err := func() error {
		for _, r := range recs {
			sig, err := sinks.SignalOf(r)
			if err != nil {
				return err
			}
			dir, err := tenantDir(r)
			if err != nil {
				s.log.Warn("record with an invalid tenant", "err", err)
				rejected, reason = append(rejected, r), "file sink: "+err.Error()
				continue
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
			st, err := s.stream(dir, sig)
			if err != nil {
				return err
			}
			if _, ok := good[st]; !ok {
				good[st] = st.size
			}
			if _, err := st.f.Write(s.buf); err != nil {
				return fmt.Errorf("file sink: %w", err)
			}
			st.size += int64(len(s.buf))
			if n, err := strconv.ParseInt(string(r.Header(stream.HeaderItems)), 10, 64); err == nil {
				items += n
			}
		}
		for st := range good {
			if err := st.f.Sync(); err != nil {
				return fmt.Errorf("file sink: %w", err)
			}
		}
		return nil
	}()
	if err != nil {
		s.rollback(good)
		return err
	}
	for k, st := range s.files {
		if _, ok := good[st]; !ok {
			continue
		}
		if max := int64(s.cfg.MaxFileBytes); max > 0 && st.size >= max {
			if err := s.rotate(k); err != nil {
				return err
			}
		}
	}
	if s.sent != nil {
		s.sent.Add(float64(items))
	}
	if len(rejected) > 0 {
		return &sinks.RejectedError{Records: rejected, Reason: reason}
	}
	return nil
}

// rollback cuts the files of a failed Write back to their sizes before it,
// so that its retry does not append after a partial line (or repeat the
// complete ones). A file that cannot be cut is closed: opening it again
// removes a partial last line.
func (s *Sink) rollback(good map[*active]int64) {
	for st, size := range good {
		err := st.f.Truncate(size)
		if err == nil {
			_, err = st.f.Seek(size, io.SeekStart)
		}
		if err == nil {
			st.size = size
			continue
		}
		s.log.Warn("cutting a file back after a failed write", "err", err)
		for k, open := range s.files {
			if open == st {
				st.f.Close()
				delete(s.files, k)
			}
		}
	}
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

// stream returns the open file of tenant directory dir and sig, creating
// the directory and opening the file, cutting off a partial last line left
// by a crash.
func (s *Sink) stream(dir string, sig otlpwire.Signal) (*active, error) {
	k := streamKey{dir, sig}
	if st := s.files[k]; st != nil {
		return st, nil
	}
	tdir := filepath.Join(s.cfg.Path, dir)
	if _, err := os.Stat(tdir); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(tdir, dirMode); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("file sink: %w", err)
		}
		if err := syncDir(s.cfg.Path); err != nil {
			return nil, err
		}
	}
	name := filepath.Join(tdir, sig.String()+".jsonl")
	_, statErr := os.Stat(name)
	f, err := s.openFile(name, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		if err := syncDir(tdir); err != nil {
			f.Close()
			return nil, err
		}
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
	st := &active{f: f, size: size}
	s.files[k] = st
	return st, nil
}

// syncDir fsyncs directory dir, making the names created, renamed or
// removed in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("file sink: fsync %s: %w", dir, err)
	}
	return nil
}

// completeLines truncates f after its last newline and returns the new size.
func completeLines(f file) (int64, error) {
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

func (s *Sink) rotate(k streamKey) error {
	st := s.files[k]
	delete(s.files, k)
	if err := st.f.Close(); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	s.stepDone("closed")
	dir := filepath.Join(s.cfg.Path, k.dir)
	name := filepath.Join(dir, k.sig.String()+".jsonl")
	rotated := filepath.Join(dir, fmt.Sprintf("%s-%s.jsonl", k.sig, s.now().UTC().Format("20060102T150405.000000000Z")))
	if err := os.Rename(name, rotated); err != nil {
		return fmt.Errorf("file sink: rotating: %w", err)
	}
	s.stepDone("renamed")
	s.log.Info("rotated file", "file", rotated)
	if s.cfg.MaxFiles > 0 {
		old, _ := filepath.Glob(filepath.Join(dir, k.sig.String()+"-*.jsonl"))
		slices.Sort(old) // the time in the name sorts oldest first
		for len(old) > s.cfg.MaxFiles {
			if err := os.Remove(old[0]); err != nil {
				s.log.Warn("removing an old file", "file", old[0], "err", err)
			}
			old = old[1:]
		}
		s.stepDone("removed")
	}
	return syncDir(dir)
}

// Close closes the open files.
func (s *Sink) Close() error {
	var errs []error
	for k, st := range s.files {
		errs = append(errs, st.f.Close())
		delete(s.files, k)
	}
	return errors.Join(errs...)
}
