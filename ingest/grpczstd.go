package ingest

import (
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/encoding"
)

// zstd is a gRPC encoding beside gzip: the OpenTelemetry Collector's and
// Alloy's OTLP/gRPC exporters offer compression: zstd, which costs both
// ends less CPU than gzip. grpc-go ships no zstd, so sluice registers one
// on klauspost/compress, whose decoder the HTTP ingester uses too.
//
// grpc-go reads at most the server's MaxRecvMsgSize (max_request_bytes)
// from Decompress, so a small frame that inflates past it is refused
// (ResourceExhausted), and the decoder's window is bounded, so such a frame
// cannot make it allocate much either.
func init() { encoding.RegisterCompressor(&zstdCompressor{}) }

// zstdMaxWindow bounds the window a frame may ask of the decoder.
const zstdMaxWindow = 8 << 20

type zstdCompressor struct {
	enc, dec sync.Pool // *zstd.Encoder, *zstd.Decoder
}

func (*zstdCompressor) Name() string { return "zstd" }

func (c *zstdCompressor) Compress(w io.Writer) (io.WriteCloser, error) {
	e, _ := c.enc.Get().(*zstd.Encoder)
	if e == nil {
		var err error
		if e, err = zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest)); err != nil {
			return nil, err
		}
	} else {
		e.Reset(w)
	}
	return &zstdWriter{Encoder: e, pool: &c.enc}, nil
}

type zstdWriter struct {
	*zstd.Encoder
	pool *sync.Pool
}

func (w *zstdWriter) Close() error {
	err := w.Encoder.Close()
	w.pool.Put(w.Encoder)
	return err
}

func (c *zstdCompressor) Decompress(r io.Reader) (io.Reader, error) {
	d, _ := c.dec.Get().(*zstd.Decoder)
	if d == nil {
		var err error
		d, err = zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderMaxMemory(zstdMaxWindow*4))
		if err != nil {
			return nil, err
		}
	} else if err := d.Reset(r); err != nil {
		c.dec.Put(d)
		return nil, err
	}
	return &zstdReader{d: d, pool: &c.dec}, nil
}

// zstdReader returns its decoder to the pool at the end of the message.
type zstdReader struct {
	d    *zstd.Decoder
	pool *sync.Pool
}

func (z *zstdReader) Read(p []byte) (int, error) {
	if z.d == nil {
		return 0, io.EOF
	}
	n, err := z.d.Read(p)
	if err == io.EOF {
		z.d.Reset(nil)
		z.pool.Put(z.d)
		z.d = nil
	}
	return n, err
}
