package otlpwire

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// KeyMode chooses how Split assigns items to partitions.
type KeyMode uint8

const (
	// KeyDefault is KeyResource for metrics and logs and KeyTraceID for
	// traces.
	KeyDefault KeyMode = iota
	// KeyResource sends all items of a resource to one partition:
	//
	//	partition = (Σ xxhash64(a) mod 2^64) % Partitions
	//
	// over the encoded bytes a of each KeyValue in the resource's
	// attributes (the value of each Resource field 1, without tag and
	// length). The sum does not depend on the order of the attributes, so
	// a resource's series stay on one partition whatever order the agent
	// writes them in. A resource without attributes hashes to 0.
	KeyResource
	// KeyTraceID sends each span (or log record) to
	// xxhash64(trace_id) % Partitions, so that a trace's spans meet on one
	// partition. Items with an empty trace id go to their resource's
	// partition, as with KeyResource. Not valid for metrics.
	KeyTraceID
	// KeyNone chooses no partition: every chunk has Partition -1 and only
	// MaxRecordBytes splits the request.
	KeyNone
)

func (k KeyMode) String() string {
	switch k {
	case KeyDefault:
		return "default"
	case KeyResource:
		return "resource"
	case KeyTraceID:
		return "trace_id"
	case KeyNone:
		return "none"
	}
	return fmt.Sprintf("KeyMode(%d)", uint8(k))
}

// Options says how to split a request.
type Options struct {
	// Partitions of the topic; at least 1 unless Key is KeyNone.
	Partitions int32
	Key        KeyMode
	// MaxRecordBytes bounds the encoded size of every chunk (the record
	// value; leave room below the bus limit for headers); 0 means no bound.
	MaxRecordBytes int
	// Check checks every item against the limits of the workers' decoder
	// (limits.go): an item that breaks them is rejected (Result.Invalid)
	// and left out of the chunks, beside the valid items of its request.
	Check bool
}

// Chunk is one bus record's worth of a request.
type Chunk struct {
	// Partition the chunk belongs to, or -1 with KeyNone.
	Partition int32
	// Value is a complete Export*ServiceRequest of the request's signal, at
	// most MaxRecordBytes long. It aliases the body or the Splitter's
	// buffer: see the package documentation.
	Value []byte
	// Items is the number of data points, log records or spans in Value.
	Items int
}

// Result is what Split made of a request.
type Result struct {
	// Chunks, by ascending partition, then in the order of the request.
	// None has zero items; a request without items gives none.
	Chunks []Chunk
	// Items is the number of items in Chunks.
	Items int
	// Rejected counts the items that do not fit in a record even alone,
	// with the resource, scope (and metric) around them, and are in no
	// chunk. RejectReason then names the first of them.
	Rejected     int
	RejectReason string
	// Invalid counts the items among Rejected that break the limits
	// (Options.Check); RejectReason then names the first, its path and
	// field, such as
	//
	//	resource_logs[0].scope_logs[1].log_records[3].attributes[2].key: invalid UTF-8
	Invalid int
}

// Splitter splits requests into chunks. Its buffers are reused from one call
// to the next, so it allocates nothing once they have grown to the size of
// the requests it sees. A Splitter is not safe for concurrent use; keep one
// per goroutine or in a sync.Pool. The zero value is ready to use.
type Splitter struct {
	scan   scanner
	pack   packer
	counts []int32 // sortUnits' scratch
	sorted []unit
}

// Split validates body, an Export{Metrics,Logs,Trace}ServiceRequest of
// signal sig in the protobuf encoding, counts its items and cuts it into
// chunks by partition and size.
//
// A malformed body gives a *FormatError; bad options an error wrapping
// ErrOptions. The chunks stay valid until the next call of Split on s, and
// as long as body is neither changed nor reused.
func (s *Splitter) Split(sig Signal, body []byte, opt Options) (Result, error) {
	key, err := opt.resolve(sig)
	if err != nil {
		return Result{}, err
	}
	if len(body) >= math.MaxInt32 {
		return Result{}, &FormatError{Msg: fmt.Sprintf("request of %d bytes is too large", len(body))}
	}
	sc := &s.scan
	sc.reset(sig, body, true, key, opt.Partitions)
	sc.check = opt.Check
	if err := sc.request(); err != nil {
		return Result{}, err
	}
	if len(sc.units) == 0 {
		return Result{}, nil
	}
	if sc.parts == 1 && sc.nbad == 0 && sc.ndirty == 0 && (opt.MaxRecordBytes == 0 || len(body) <= opt.MaxRecordBytes) {
		s.pack.chunks = append(s.pack.chunks[:0], Chunk{Partition: sc.units[0].part, Value: body, Items: sc.nitems})
		return Result{Chunks: s.pack.chunks, Items: sc.nitems}, nil
	}
	if sc.parts > 1 {
		s.sortUnits(opt.Partitions)
	}
	return s.pack.run(sc, opt.MaxRecordBytes)
}

// Invalid is Split's counterpart for what Options.Check rejects: it cuts
// body into chunks holding only the items that break the limits of the
// workers' decoder (limits.go), each with its resource, scope (and metric)
// around it, in request order; Result.Items counts them and RejectReason
// names the first. A worker that meets a record from an older ingester or
// an outside producer dead-letters these alone and processes the rest.
// MaxRecordBytes bounds the chunks as in Split; Partitions and Key are
// ignored.
func (s *Splitter) Invalid(sig Signal, body []byte, maxRecordBytes int) (Result, error) {
	if len(body) >= math.MaxInt32 {
		return Result{}, &FormatError{Msg: fmt.Sprintf("request of %d bytes is too large", len(body))}
	}
	sc := &s.scan
	sc.reset(sig, body, true, KeyNone, 0)
	sc.check = true
	if err := sc.request(); err != nil {
		return Result{}, err
	}
	if sc.nbad == 0 {
		return Result{}, nil
	}
	s.pack.invert = true
	res, err := s.pack.run(sc, maxRecordBytes)
	s.pack.invert = false
	if err != nil {
		return Result{}, err
	}
	res.RejectReason = sc.badReason
	res.Invalid = sc.nbad
	return res, nil
}

// sortUnits orders the units by partition, and within a partition in request
// order, as they come: by a counting sort unless there are many more
// partitions than units. Partitions are in [0, nparts).
func (s *Splitter) sortUnits(nparts int32) {
	units := s.scan.units
	if int(nparts) > 4*len(units)+1024 {
		slices.SortFunc(units, func(a, b unit) int {
			if c := cmp.Compare(a.part, b.part); c != 0 {
				return c
			}
			return cmp.Compare(a.off, b.off)
		})
		return
	}
	start := slices.Grow(s.counts[:0], int(nparts))[:nparts]
	clear(start)
	for _, u := range units {
		start[u.part]++
	}
	n := int32(0)
	for i, c := range start {
		start[i] = n
		n += c
	}
	sorted := slices.Grow(s.sorted[:0], len(units))[:len(units)]
	for _, u := range units {
		sorted[start[u.part]] = u
		start[u.part]++
	}
	s.counts = start
	s.scan.units, s.sorted = sorted, units
}

// Count validates body as Split does and returns its number of items: data
// points, log records or spans. It allocates nothing unless body is
// malformed.
func Count(sig Signal, body []byte) (int, error) {
	if sig > Traces {
		return 0, fmt.Errorf("%w: unknown signal %v", ErrOptions, sig)
	}
	var sc scanner
	sc.reset(sig, body, false, KeyNone, 0)
	if err := sc.request(); err != nil {
		return 0, err
	}
	return sc.nitems, nil
}

// resolve checks opt and returns the key mode to use for sig.
func (opt Options) resolve(sig Signal) (KeyMode, error) {
	if sig > Traces {
		return 0, fmt.Errorf("%w: unknown signal %v", ErrOptions, sig)
	}
	key := opt.Key
	if key == KeyDefault {
		key = KeyResource
		if sig == Traces {
			key = KeyTraceID
		}
	}
	switch key {
	case KeyResource, KeyTraceID:
		if opt.Partitions < 1 {
			return 0, fmt.Errorf("%w: key %v needs Partitions >= 1, have %d (use KeyNone when the partition count is unknown)",
				ErrOptions, key, opt.Partitions)
		}
		if key == KeyTraceID && sig == Metrics {
			return 0, fmt.Errorf("%w: key trace_id is not valid for metrics", ErrOptions)
		}
	case KeyNone:
	default:
		return 0, fmt.Errorf("%w: unknown key mode %v", ErrOptions, key)
	}
	if opt.MaxRecordBytes < 0 {
		return 0, fmt.Errorf("%w: negative MaxRecordBytes %d", ErrOptions, opt.MaxRecordBytes)
	}
	return key, nil
}
