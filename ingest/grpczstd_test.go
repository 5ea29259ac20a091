package ingest

import (
	"bytes"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzZstdDecompress: whatever bytes arrive as a zstd-encoded gRPC
// message, Decompress fails or yields bytes without panicking, and the
// pooled decoder then still decodes a good message exactly.
func FuzzZstdDecompress(f *testing.F) {
	c := &zstdCompressor{}
	compress := func(b []byte) []byte {
		var buf bytes.Buffer
		w, err := c.Compress(&buf)
		if err != nil {
			f.Fatal(err)
		}
		w.Write(b)
		w.Close()
		return buf.Bytes()
	}
	plain, err := proto.Marshal(metricsRequest(3, 4, 5))
	if err != nil {
		f.Fatal(err)
	}
	good := compress(plain)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(compress(make([]byte, 4<<20))) // inflates 1000-fold
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := c.Decompress(bytes.NewReader(b)); err == nil {
			io.Copy(io.Discard, io.LimitReader(r, 1<<20))
		}
		r, err := c.Decompress(bytes.NewReader(good))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("a good message after %d bytes of input: %d bytes, %v", len(b), len(got), err)
		}
	})
}
