package promrw

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// The remote write 2.0 messages (prometheus/prompb
// io/prometheus/write/v2/types.proto), encoded by hand like those of 1.0
// (proto.go):
//
//	Request    { repeated string symbols = 4; repeated TimeSeries timeseries = 5; }
//	TimeSeries { repeated uint32 labels_refs = 1; repeated Sample samples = 2;
//	             repeated Histogram histograms = 3; repeated Exemplar exemplars = 4;
//	             Metadata metadata = 5; }
//	Sample     { double value = 1; int64 timestamp = 2; int64 start_timestamp = 3; }
//	Metadata   { MetricType type = 1; uint32 help_ref = 3; uint32 unit_ref = 4; }
//	Histogram  { the fields of 1.0's, and int64 start_timestamp = 17; }
//
// Labels and the metadata's help and unit are references into the
// request's symbols, whose first is "". The collector keeps the samples
// and histograms of a Write in their 1.0 encoding (a Sample and a
// Histogram of 1.0 are those of 2.0 without the start timestamp) and cuts
// them into 2.0 requests by rewriting only the TimeSeries around them
// (collector.cutV2).
const (
	fReqV2Symbols    = 4
	fReqV2TimeSeries = 5

	fTSV2LabelsRefs = 1
	fTSV2Samples    = 2
	fTSV2Histograms = 3
	fTSV2Metadata   = 5

	fSampleV2Start = 3
	fHistV2Start   = 17

	fMetaV2Type    = 1
	fMetaV2HelpRef = 3
	fMetaV2UnitRef = 4
)

// Metadata.MetricType values.
const (
	metaUnspecified uint8 = iota
	metaCounter
	metaGauge
	metaHistogram
	metaGaugeHistogram
	metaSummary
	metaInfo
	metaStateset
)

// The tags (field and wire type, one byte) of the items the collector
// holds: 1.0 TimeSeries.samples and .histograms.
var (
	tagSample = byte(protowire.EncodeTag(fTSSamples, protowire.BytesType))
	tagHist   = byte(protowire.EncodeTag(fTSHistograms, protowire.BytesType))
)

// Protocol values of the protocol key.
const (
	protoV1   = "v1"
	protoV2   = "v2"
	protoAuto = "auto"
)

// Content types and versions of the two protocols.
const (
	contentTypeV1 = "application/x-protobuf"
	contentTypeV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	versionV1     = "0.1.0"
	versionV2     = "2.0.0"
)

// The response headers of a 2.0 receiver: what it wrote of the request.
const (
	headerSamplesWritten    = "X-Prometheus-Remote-Write-Samples-Written"
	headerHistogramsWritten = "X-Prometheus-Remote-Write-Histograms-Written"
	headerExemplarsWritten  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// written is what a 2.0 receiver says it wrote of a request.
type written struct {
	samples, histograms, exemplars int64
	// confirmed: the answer has at least one of the headers. A 1.0
	// receiver sends none; one that ignores the content type reads a 2.0
	// request as a 1.0 one with no series (their fields differ) and
	// answers 2xx having written nothing.
	confirmed bool
}

// parseWritten reads the written headers of an answer. A header that is
// present must be a count (0 or more): anything else is an error, since
// the counts decide whether data was lost.
func parseWritten(h http.Header) (written, error) {
	var w written
	for _, f := range [...]struct {
		name string
		dst  *int64
	}{{headerSamplesWritten, &w.samples}, {headerHistogramsWritten, &w.histograms}, {headerExemplarsWritten, &w.exemplars}} {
		vs := h.Values(f.name)
		if len(vs) == 0 {
			continue
		}
		w.confirmed = true
		if len(vs) > 1 {
			return written{}, fmt.Errorf("%s given %d times", f.name, len(vs))
		}
		v := strings.TrimSpace(vs[0])
		if v == "" {
			continue // empty means zero, as Prometheus reads it
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return written{}, fmt.Errorf("%s: %q is not a count", f.name, truncate(v, 40))
		}
		*f.dst = n
	}
	return w, nil
}

// symbolRef returns the reference of s in the symbols of request r, added
// when new. s must stay as it is while r is in use (it is a series'
// labels, held for the Write, or a metadata string).
func (r *request) symbolRef(s string) uint32 {
	if ref, ok := r.syms[s]; ok {
		return ref
	}
	ref := uint32(len(r.syms))
	r.syms[s] = ref
	r.symBody = protowire.AppendTag(r.symBody, fReqV2Symbols, protowire.BytesType)
	r.symBody = protowire.AppendString(r.symBody, s)
	return ref
}

// labelRef is symbolRef for the string at place i of a series' labels
// (names and values): the string at the same place of the request's last
// series, when equal, gives its ref without a map lookup.
func (r *request) labelRef(i int, s string) uint32 {
	if i < len(r.prev) && r.prev[i].s == s {
		return r.prev[i].ref
	}
	ref := r.symbolRef(s)
	if i < len(r.prev) {
		r.prev[i] = symRef{s, ref}
	} else {
		r.prev = append(r.prev, symRef{s, ref})
	}
	return ref
}

// startV2 makes r an empty 2.0 request: its symbols hold "" alone.
func (r *request) startV2() {
	r.v2 = true
	if r.syms == nil {
		r.syms = map[string]uint32{}
	}
	clear(r.syms)
	r.symBody = r.symBody[:0]
	r.symbolRef("")
	r.lastMeta = -1
}

// itemV2Size is the size of item x (a 1.0 sample or histogram field in
// arena) as a 2.0 field: the tag, the length and the message, with the
// start timestamp when it has one.
func itemV2Size(arena []byte, x *item) int {
	inner := itemInnerLen(arena, x)
	inner += stSize(arena[x.off], x.st)
	return 1 + protowire.SizeVarint(uint64(inner)) + inner
}

// itemInnerLen is the length of the message of item x.
func itemInnerLen(arena []byte, x *item) int {
	_, k := protowire.ConsumeVarint(arena[x.off+1:])
	return int(x.len) - 1 - k
}

func stSize(tag byte, st int64) int {
	if st == 0 {
		return 0
	}
	if tag == tagHist {
		return 2 + protowire.SizeVarint(uint64(st)) // field 17: a two-byte tag
	}
	return 1 + protowire.SizeVarint(uint64(st))
}

// appendItemV2 appends item x as a 2.0 TimeSeries field.
func appendItemV2(dst, arena []byte, x *item) []byte {
	tag := arena[x.off]
	msg := arena[x.off+x.len-uint32(itemInnerLen(arena, x)) : x.off+x.len]
	field, stField := protowire.Number(fTSV2Samples), protowire.Number(fSampleV2Start)
	if tag == tagHist {
		field, stField = fTSV2Histograms, fHistV2Start
	}
	dst = protowire.AppendTag(dst, field, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(len(msg)+stSize(tag, x.st)))
	dst = append(dst, msg...)
	if x.st != 0 {
		dst = protowire.AppendTag(dst, stField, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(x.st))
	}
	return dst
}

// seriesMeta is the metadata of a series: its type, help and unit.
type seriesMeta struct {
	typ        uint8
	help, unit string
}

// metadataSize is the size of the Metadata message of m in r (refs
// already made).
func metadataSize(typ uint8, help, unit uint32) int {
	n := 0
	if typ != 0 {
		n += 1 + protowire.SizeVarint(uint64(typ))
	}
	if help != 0 {
		n += 1 + protowire.SizeVarint(uint64(help))
	}
	if unit != 0 {
		n += 1 + protowire.SizeVarint(uint64(unit))
	}
	return n
}

func appendMetadata(dst []byte, typ uint8, help, unit uint32) []byte {
	dst = protowire.AppendTag(dst, fTSV2Metadata, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(metadataSize(typ, help, unit)))
	if typ != 0 {
		dst = protowire.AppendTag(dst, fMetaV2Type, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(typ))
	}
	if help != 0 {
		dst = protowire.AppendTag(dst, fMetaV2HelpRef, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(help))
	}
	if unit != 0 {
		dst = protowire.AppendTag(dst, fMetaV2UnitRef, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(unit))
	}
	return dst
}
