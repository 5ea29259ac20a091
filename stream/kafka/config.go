package kafka

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/sluice-dev/sluice/stream"
)

// Config configures a Bus.
type Config struct {
	// Brokers are the seed addresses (host:port) of the cluster. Required.
	Brokers []string
	// ClientID names the connections in the brokers' logs and quotas.
	// Default "sluice".
	ClientID string

	// Compression of produced batches: "zstd" (default), "lz4", "snappy",
	// "gzip" or "none".
	Compression string
	// CompressionLevel is the codec's level; 0 is its default (zstd: 1,
	// see DefaultZstdLevel). zstd: 1 (fastest) to 4 (best); gzip: 1 to 9;
	// lz4: 1 to 9 (0 is its fast mode); snappy and none have no levels.
	CompressionLevel int
	// SmallBatchBytes: with zstd or gzip, a batch (the records of one
	// partition in one produce request) smaller than this is compressed
	// with snappy instead. zstd and gzip pay a fixed cost per batch (zstd
	// ~15 us: its tables) that dominates small batches, which snappy
	// compresses 8-12x faster for ~25% more bytes. 0: DefaultSmallBatchBytes;
	// negative: every batch with Compression.
	SmallBatchBytes int
	// ZstdRawLiterals: with zstd, the literals (the bytes no match covers)
	// are stored as they are rather than Huffman-coded. On the raw
	// batches of the realistic corpus that is ~20% more bytes on the bus
	// for 30-40% less CPU to decompress (the workers) and ~20% less to
	// compress (the ingesters): a point between zstd and snappy
	// (BenchmarkCompression; the table is in the README).
	ZstdRawLiterals bool
	// ProduceTimeout bounds how long Produce waits for the brokers'
	// acknowledgement of its records (like Kafka's delivery.timeout.ms);
	// past it Produce fails with stream.ErrUnavailable. It also bounds
	// Ping, EnsureTopics and Lag when their context has no deadline.
	// Default 10s.
	ProduceTimeout time.Duration
	// MaxBufferedBytes caps the bytes of records waiting for an
	// acknowledgement, over all concurrent Produce calls; at the cap
	// Produce waits. 0: no byte cap (franz-go still caps the buffer at
	// 10000 records).
	MaxBufferedBytes int
	// MaxRecordBytes is the largest batch the producer sends (Kafka's
	// max.request.size per partition batch), so also the largest record it
	// accepts; a larger record fails with stream.ErrRecordTooLarge without
	// being sent. It should not exceed the brokers' message.max.bytes.
	// Default 1 MiB.
	MaxRecordBytes int32
	// SessionTimeout is how long a consumer group waits for a member that
	// stopped answering (a crashed process) before it gives the member's
	// partitions to the others. Default 45s; brokers accept 6s to 300s
	// by default (group.min/max.session.timeout.ms).
	SessionTimeout time.Duration
	// ReplicationFactor of the topics EnsureTopics creates. Default -1,
	// the brokers' default.replication.factor.
	ReplicationFactor int16
	// MinInsyncReplicas sets min.insync.replicas on the topics
	// EnsureTopics creates: how many replicas must have a record before
	// the producer (which asks for all in-sync replicas) is told it is
	// written; with fewer in sync, produces fail rather than being held
	// by one broker alone. 0: the brokers' default (1 unless configured).
	MinInsyncReplicas int16

	// TLS, when set, encrypts the connections to the brokers.
	TLS *tls.Config
	// SASL, when set, authenticates the connections, e.g. with
	// franz-go's pkg/sasl/plain or pkg/sasl/scram.
	SASL sasl.Mechanism

	// Logger receives the client's warnings and errors (and its info and
	// debug messages when enabled). Nil discards them.
	Logger *slog.Logger
	// Registerer, when set, receives franz-go's client metrics (kprom)
	// under the namespace sluice_kafka, labelled client_id = ClientID
	// plus "-producer" or "-consumer-<group>-<n>". Buses sharing a
	// Registerer need distinct ClientIDs.
	Registerer prometheus.Registerer
}

const (
	defaultClientID       = "sluice"
	defaultProduceTimeout = 10 * time.Second
	defaultMaxRecordBytes = 1 << 20
	defaultMaxPollRecords = 10000
	metricsNamespace      = "sluice_kafka"
)

// withDefaults returns c with the zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.ClientID == "" {
		c.ClientID = defaultClientID
	}
	if c.Compression == "" {
		c.Compression = "zstd"
	}
	if c.ProduceTimeout <= 0 {
		c.ProduceTimeout = defaultProduceTimeout
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = defaultMaxRecordBytes
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: at least one address is required"))
	}
	if _, err := codec(c.Compression, c.CompressionLevel); err != nil {
		errs = append(errs, err)
	}
	if c.ZstdRawLiterals && c.Compression != "zstd" {
		errs = append(errs, fmt.Errorf("zstd raw literals need zstd compression, not %s", c.Compression))
	}
	if c.MaxRecordBytes < 0 {
		errs = append(errs, errors.New("max record bytes must not be negative"))
	}
	if c.MaxBufferedBytes < 0 {
		errs = append(errs, errors.New("max buffered bytes must not be negative"))
	}
	if c.SessionTimeout < 0 {
		errs = append(errs, errors.New("session timeout must not be negative"))
	}
	if c.ReplicationFactor < -1 {
		errs = append(errs, errors.New("replication factor must be positive or -1 (broker default)"))
	}
	if c.MinInsyncReplicas < 0 {
		errs = append(errs, errors.New("min insync replicas must be positive or 0 (broker default)"))
	} else if c.ReplicationFactor > 0 && c.MinInsyncReplicas > c.ReplicationFactor {
		errs = append(errs, fmt.Errorf("min insync replicas (%d) must not exceed the replication factor (%d): no produce could succeed", c.MinInsyncReplicas, c.ReplicationFactor))
	}
	return errors.Join(errs...)
}

// DefaultZstdLevel is the zstd level of the raw topics when none is set:
// the fastest. On the realistic metrics corpus it compresses about as well
// as the default level for a fraction of the CPU (BenchmarkCompression;
// the table is in the README).
const DefaultZstdLevel = 1

// DefaultSmallBatchBytes is the batch size below which zstd and gzip give
// way to snappy (see Config.SmallBatchBytes): ~40 data points of the
// realistic corpus, what one-point requests coalesce to in a round trip.
const DefaultSmallBatchBytes = 16 << 10

// sizedCompressor compresses batches below small bytes with snappy and the
// others with the configured codec. Consumers read either: the codec is in
// each batch's attributes.
type sizedCompressor struct {
	small, large kgo.Compressor
	threshold    int
}

func (c sizedCompressor) Compress(dst *bytes.Buffer, src []byte, flags ...kgo.CompressFlag) ([]byte, kgo.CompressionCodecType) {
	if len(src) < c.threshold {
		return c.small.Compress(dst, src, flags...)
	}
	return c.large.Compress(dst, src, flags...)
}

// zstdCompressor is zstd as franz-go's compressor writes it (64 KiB window,
// one goroutine per encoder), but without the frame checksum: an xxhash64
// of the uncompressed batch, which costs the producer and every consumer a
// pass over it (~5% of zstd's compression and ~15% of its decompression
// on the raw batches, BenchmarkCompression), while the batch's CRC-32C
// already guards the stored bytes. Consumers read both kinds of frame.
type zstdCompressor struct {
	pool     sync.Pool // *zstd.Encoder
	fallback kgo.Compressor
}

func newZstdCompressor(level int, rawLiterals bool, fallback kgo.Compressor) (*zstdCompressor, error) {
	opts := []zstd.EOption{
		zstd.WithWindowSize(64 << 10),
		zstd.WithEncoderConcurrency(1),
		zstd.WithZeroFrames(true),
		zstd.WithEncoderLevel(zstd.EncoderLevel(level)),
		zstd.WithEncoderCRC(false),
		zstd.WithNoEntropyCompression(rawLiterals),
	}
	probe, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	c := &zstdCompressor{fallback: fallback}
	c.pool.Put(probe)
	c.pool.New = func() any {
		enc, _ := zstd.NewWriter(nil, opts...) // the options were checked above
		return enc
	}
	return c, nil
}

func (c *zstdCompressor) Compress(dst *bytes.Buffer, src []byte, flags ...kgo.CompressFlag) ([]byte, kgo.CompressionCodecType) {
	for _, f := range flags {
		if f == kgo.CompressDisableZstd { // a broker too old for zstd
			return c.fallback.Compress(dst, src, flags...)
		}
	}
	enc := c.pool.Get().(*zstd.Encoder)
	defer c.pool.Put(enc)
	if n := enc.MaxEncodedSize(len(src)); n > dst.Cap() {
		dst.Grow(n)
	}
	// As franz-go does: the output goes into dst's buffer, not through
	// dst.Write; the caller resets dst before its next use.
	return enc.EncodeAll(src, dst.Bytes()), kgo.CodecZstd
}

// compressor is the producer's compression: codec, with snappy for the
// batches below SmallBatchBytes when codec is zstd or gzip, and none for
// the batches of values compressed already (skipCompressed).
func (c Config) compressor() (kgo.Compressor, error) {
	cmp, err := c.codecCompressor()
	if cmp == nil || err != nil {
		return cmp, err
	}
	return skipCompressed{cmp}, nil
}

// skipCompressed sends as it is a batch whose first record's content type
// says its value is compressed already (stream.CompressedContent: the
// aggregation records), rather than have the codec work over it again. A
// partition of the aggregation topic holds nothing else, so the first
// record speaks for the batch. zstd gave a zstd frame up at once,
// but found a little to take out of an S2 block (an aggregation record)
// at about 3× the CPU S2 took to write it, for 1% of its bytes.
type skipCompressed struct{ kgo.Compressor }

func (c skipCompressed) Compress(dst *bytes.Buffer, src []byte, flags ...kgo.CompressFlag) ([]byte, kgo.CompressionCodecType) {
	if firstCompressed(src) {
		return nil, kgo.CodecNone // franz-go sends src as it is
	}
	return c.Compressor.Compress(dst, src, flags...)
}

// firstCompressed reports whether the first record of records (a batch's
// records in Kafka's record format v2) has a content-type header that
// stream.CompressedContent names. Anything it cannot read is not.
func firstCompressed(records []byte) bool {
	r := recordReader{p: records}
	if !r.take(r.varint()) {
		return false
	}
	r.p = r.last // the first record
	// Attributes (a byte), then the timestamp and offset deltas.
	if !r.take(1) || r.varint() == math.MinInt64 || r.varint() == math.MinInt64 {
		return false
	}
	// The key and the value; -1 is null.
	for range 2 {
		if l := r.varint(); l > 0 && !r.take(l) {
			return false
		}
	}
	for n := r.varint(); n > 0; n-- {
		if !r.take(r.varint()) {
			return false
		}
		key := r.last
		if !r.take(r.varint()) {
			return false
		}
		if string(key) == stream.HeaderContentType {
			return stream.CompressedContent(string(r.last))
		}
	}
	return false
}

// recordReader reads the varints and byte strings of a Kafka record.
type recordReader struct {
	p, last []byte
}

// varint reads a zigzag varint; math.MinInt64 for none.
func (r *recordReader) varint() int64 {
	v, n := binary.Varint(r.p)
	if n <= 0 {
		r.p = nil
		return math.MinInt64
	}
	r.p = r.p[n:]
	return v
}

// take moves n bytes into last, or reports that there are fewer.
func (r *recordReader) take(n int64) bool {
	if n < 0 || n > int64(len(r.p)) {
		return false
	}
	r.last, r.p = r.p[:n], r.p[n:]
	return true
}

// codecCompressor is the configured codec's compressor, with snappy for
// the batches below SmallBatchBytes when codec is zstd or gzip; nil for
// none.
func (c Config) codecCompressor() (kgo.Compressor, error) {
	cc, err := codec(c.Compression, c.CompressionLevel)
	if err != nil {
		return nil, err
	}
	large, err := kgo.DefaultCompressor(cc)
	if err != nil || large == nil { // none
		return large, err
	}
	if c.Compression == "zstd" {
		level := c.CompressionLevel
		if level == 0 {
			level = DefaultZstdLevel
		}
		// franz-go's own compressor, with its fallback to no
		// compression, stays for the brokers without zstd.
		if large, err = newZstdCompressor(level, c.ZstdRawLiterals, large); err != nil {
			return nil, err
		}
	}
	threshold := c.SmallBatchBytes
	if threshold == 0 {
		threshold = DefaultSmallBatchBytes
	}
	if threshold < 0 || (c.Compression != "zstd" && c.Compression != "gzip") {
		return large, nil
	}
	small, err := kgo.DefaultCompressor(kgo.SnappyCompression())
	if err != nil {
		return nil, err
	}
	return sizedCompressor{small: small, large: large, threshold: threshold}, nil
}

// codec maps compression and compression_level to franz-go's codec, or
// says what is wrong.
func codec(name string, level int) (kgo.CompressionCodec, error) {
	levels := func(lo, hi int) error {
		if level != 0 && (level < lo || level > hi) {
			return fmt.Errorf("compression level %d for %s: want %d to %d (0: the default)", level, name, lo, hi)
		}
		return nil
	}
	switch name {
	case "zstd":
		if level == 0 {
			level = DefaultZstdLevel
		}
		// klauspost/compress's levels: 1 fastest, 2 default, 3 better,
		// 4 best compression.
		return kgo.ZstdCompression().WithLevel(level), levels(1, 4)
	case "lz4":
		// pierrec/lz4's levels are 0 (fast) and 1<<(8+n) for n in 1..9.
		c := kgo.Lz4Compression()
		if level > 0 {
			c = c.WithLevel(1 << (8 + level))
		}
		return c, levels(1, 9)
	case "gzip":
		c := kgo.GzipCompression()
		if level != 0 {
			c = c.WithLevel(level)
		}
		return c, levels(1, 9)
	case "snappy", "none":
		c := kgo.SnappyCompression()
		if name == "none" {
			c = kgo.NoCompression()
		}
		if level != 0 {
			return c, fmt.Errorf("compression level %d: %s has no levels (use 0)", level, name)
		}
		return c, nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("compression %q: want zstd, lz4, snappy, gzip or none", name)
}

// producerOpts are the options of a client that produces: the Bus's, and
// each transactional consumer's.
func (c Config) producerOpts() []kgo.Opt {
	compression := kgo.ProducerBatchCompression(kgo.NoCompression())
	if compressor, _ := c.compressor(); compressor != nil {
		compression = kgo.WithCompressor(compressor)
	}
	opts := []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()), // and idempotent, franz-go's default
		compression,
		kgo.ProducerBatchMaxBytes(c.MaxRecordBytes),
		// No RecordDeliveryTimeout: franz-go counts it from the record's
		// timestamp, which sluice sets to when the data was received.
		// Produce bounds its records with a context instead.
		// Produce waits for the acknowledgement: do not hold a batch back
		// for more records (batches still fill while a request is in
		// flight).
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(partitioner{}),
	}
	if c.MaxBufferedBytes > 0 {
		opts = append(opts, kgo.MaxBufferedBytes(c.MaxBufferedBytes))
	}
	return opts
}

// groupOpts are the options every group member shares.
func (c Config) groupOpts() []kgo.Opt {
	if c.SessionTimeout <= 0 {
		return nil
	}
	return []kgo.Opt{
		kgo.SessionTimeout(c.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, c.SessionTimeout/3)),
	}
}

// clientOpts are the options every client of the bus shares: connection,
// security, logging.
func (c Config) clientOpts(clientID string) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(clientID),
		kgo.WithLogger(slogger{c.Logger}),
		// After NOT_LEADER (a leader moved, a broker restarted, a topic
		// was just created) franz-go refreshes metadata, by default at
		// most every 5s: records wait that long. Refresh sooner.
		kgo.MetadataMinAge(250 * time.Millisecond),
	}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS.Clone()))
	}
	if c.SASL != nil {
		opts = append(opts, kgo.SASL(c.SASL))
	}
	return opts
}
