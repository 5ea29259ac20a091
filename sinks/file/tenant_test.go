package file

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/stream"
)

func tenantRecord(sig otlpwire.Signal, seed int, tenant string) *stream.Record {
	r := record(sig, seed)
	r.Headers = append(r.Headers, stream.Header{Key: stream.HeaderTenant, Value: []byte(tenant)})
	return r
}

// Each tenant writes under a directory of its own, named as the tenant;
// records without a tenant go to "@none", which no tenant can name. A
// record whose tenant is not a valid tenant name (written by another client
// of the bus) is refused, for the DLQ, and writes nothing: nothing reaches
// outside the sink's path or another tenant's directory. Files are 0640,
// directories 0750.
func TestTenantsApartAndContained(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	root := t.TempDir()
	dir := filepath.Join(root, "out")
	if err := os.MkdirAll(filepath.Join(root, "victim"), 0o750); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Path: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	valid := map[string]string{"team-a": "team-a", "_none": "_none", "": "@none", "x!*'()": "x!*'()", "...": "...", strings.Repeat("t", 150): strings.Repeat("t", 150)}
	invalid := []string{"../../x", "../victim", "..", ".", "a/b", "victim|other", "@none", strings.Repeat("t", 151)}
	var recs []*stream.Record
	for tenant := range valid {
		recs = append(recs, tenantRecord(otlpwire.Logs, 0, tenant))
	}
	for _, tenant := range invalid {
		recs = append(recs, tenantRecord(otlpwire.Logs, 0, tenant))
	}
	err = s.Write(context.Background(), recs)
	var rej *sinks.RejectedError
	if !errors.As(err, &rej) || len(rej.Records) != len(invalid) || !strings.Contains(rej.Reason, "header sluice-tenant: invalid tenant") {
		t.Fatalf("Write: %v, want the %d records of invalid tenants rejected", err, len(invalid))
	}
	for _, r := range rej.Records {
		if tenant := string(r.Header(stream.HeaderTenant)); !slices.Contains(invalid, tenant) {
			t.Errorf("record of tenant %q rejected", tenant)
		}
	}
	s.Close()
	for tenant, name := range valid {
		if got := lines(t, otlpwire.Logs, filepath.Join(dir, name, "logs.jsonl")); len(got) != 1 {
			t.Errorf("tenant %q: %d lines in %s, want 1", tenant, len(got), name)
		}
	}
	// Nothing outside dir; every file and directory with its mode.
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		info, _ := d.Info()
		switch {
		case p == root, p == filepath.Join(root, "victim"):
		case !strings.HasPrefix(p, dir):
			t.Errorf("%s is outside the sink's path", p)
		case d.IsDir() && p != dir && info.Mode().Perm() != 0o750:
			t.Errorf("%s: mode %v, want 0750", p, info.Mode().Perm())
		case !d.IsDir() && info.Mode().Perm() != 0o640:
			t.Errorf("%s: mode %v, want 0640", p, info.Mode().Perm())
		}
		return nil
	})
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(valid) {
		t.Errorf("%d tenant directories, want %d", len(entries), len(valid))
	}
}

// fullDisk is a real file that takes limit more bytes, then writes part of
// what it is given and fails with ENOSPC, as a full disk does.
type fullDisk struct {
	*os.File
	limit *int
}

func (f fullDisk) Write(p []byte) (int, error) {
	if *f.limit >= len(p) {
		*f.limit -= len(p)
		return f.File.Write(p)
	}
	n, _ := f.File.Write(p[:*f.limit])
	*f.limit = 0
	return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

// A Write failing on a full disk after writing part of its lines leaves no
// trace: its retry (and the Writes after) append after complete lines, and
// every record is in the file once, every line valid JSON.
func TestFullDiskThenRecovery(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{Path: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	limit := 1 << 30
	s.openFile = func(name string, flag int, perm os.FileMode) (file, error) {
		f, err := os.OpenFile(name, flag, perm)
		if err != nil {
			return nil, err
		}
		return fullDisk{f, &limit}, nil
	}
	ctx := context.Background()
	var in []*stream.Record
	batch := func(first int) []*stream.Record {
		var b []*stream.Record
		for i := range 4 {
			b = append(b, tenantRecord(otlpwire.Traces, first+i, "t"))
		}
		in = append(in, b...)
		return b
	}
	if err := s.Write(ctx, batch(0)); err != nil {
		t.Fatal(err)
	}
	failing := batch(4)
	limit = 2500 // the disk fills in the middle of the second line
	if err := s.Write(ctx, failing); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Write on a full disk: %v, want ENOSPC", err)
	}
	limit = 1 << 30 // space again: the stage retries the same records
	if err := s.Write(ctx, failing); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, batch(8)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	got := lines(t, otlpwire.Traces, filepath.Join(dir, "t", "traces.jsonl")) // fails on an invalid line
	if len(got) != len(in) {
		t.Fatalf("%d lines, want %d (one per record written)", len(got), len(in))
	}
	for i, pb := range got {
		n, err := otlpwire.Count(otlpwire.Traces, pb)
		want := otlptest.Shape{Resources: 2, Items: 3, Points: 2}.ItemCount(otlpwire.Traces)
		if err != nil || n != want || string(pb) != string(in[i].Value) {
			t.Errorf("line %d: %d items (%v), or not record %d", i+1, n, err, i)
		}
	}
}
