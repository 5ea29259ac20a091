package schemas

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/stream"
)

// ipcMagic starts every IPC envelope, followed by Version and the signal.
const ipcMagic = "SLUICEA"

// WriteIPC writes b as one processed-topic value: a small envelope (magic,
// schema version, signal) and, for each table, a length-prefixed Arrow IPC
// stream with zstd-compressed buffers.
func WriteIPC(w io.Writer, b *Batch) error {
	var buf bytes.Buffer
	buf.WriteString(ipcMagic)
	buf.WriteString(Version)
	buf.WriteByte(byte(b.Signal))
	var tbl bytes.Buffer
	for _, rec := range b.tables() {
		tbl.Reset()
		iw := ipc.NewWriter(&tbl, ipc.WithSchema(rec.Schema()), ipc.WithZstd())
		if err := iw.Write(rec); err != nil {
			return fmt.Errorf("schemas: write ipc: %w", err)
		}
		if err := iw.Close(); err != nil {
			return fmt.Errorf("schemas: write ipc: %w", err)
		}
		buf.Write(binary.AppendUvarint(nil, uint64(tbl.Len())))
		buf.Write(tbl.Bytes())
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func (b *Batch) tables() []arrow.RecordBatch {
	if b.Signal == stream.Metrics {
		return []arrow.RecordBatch{b.Resources, b.Scopes, b.Metrics, b.Items}
	}
	return []arrow.RecordBatch{b.Resources, b.Scopes, b.Items}
}

// ReadIPC decodes a value written by WriteIPC. The caller owns the batch and
// must Release it.
func ReadIPC(data []byte, mem memory.Allocator) (*Batch, error) {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	h := len(ipcMagic) + len(Version)
	if len(data) < h+1 || string(data[:len(ipcMagic)]) != ipcMagic {
		return nil, fmt.Errorf("%w: not a sluice Arrow IPC value", ErrSchema)
	}
	if v := string(data[len(ipcMagic):h]); v != Version {
		return nil, fmt.Errorf("%w: schema version %q, want %q", ErrSchema, v, Version)
	}
	b := &Batch{Signal: stream.Signal(data[h])}
	if b.Signal > stream.Traces {
		return nil, fmt.Errorf("%w: signal %d", ErrSchema, data[h])
	}
	data = data[h+1:]
	want := []*arrow.Schema{ResourcesSchema, ScopesSchema, ItemsSchema(b.Signal)}
	dst := []*arrow.RecordBatch{&b.Resources, &b.Scopes, &b.Items}
	if b.Signal == stream.Metrics {
		want = []*arrow.Schema{ResourcesSchema, ScopesSchema, MetricsSchema, DataPointsSchema}
		dst = []*arrow.RecordBatch{&b.Resources, &b.Scopes, &b.Metrics, &b.Items}
	}
	for k := range want {
		n, m := binary.Uvarint(data)
		if m <= 0 || n > uint64(len(data)-m) {
			b.Release()
			return nil, fmt.Errorf("%w: truncated IPC value", ErrSchema)
		}
		rec, err := readOne(data[m:m+int(n)], want[k], mem)
		if err != nil {
			b.Release()
			return nil, err
		}
		*dst[k] = rec
		data = data[m+int(n):]
	}
	return b, nil
}

func readOne(data []byte, want *arrow.Schema, mem memory.Allocator) (arrow.RecordBatch, error) {
	r, err := ipc.NewReader(bytes.NewReader(data), ipc.WithAllocator(mem))
	if err != nil {
		return nil, fmt.Errorf("%w: read ipc: %v", ErrSchema, err)
	}
	defer r.Release()
	if !r.Schema().Equal(want) {
		return nil, fmt.Errorf("%w: ipc table has schema %s", ErrSchema, r.Schema())
	}
	if !r.Next() {
		if r.Err() != nil {
			return nil, fmt.Errorf("%w: read ipc: %v", ErrSchema, r.Err())
		}
		return nil, fmt.Errorf("%w: ipc table has no record", ErrSchema)
	}
	rec := r.RecordBatch()
	rec.Retain()
	return rec, nil
}
