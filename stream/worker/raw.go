package worker

import (
	"bytes"
	"cmp"
	"fmt"
	"strings"

	"github.com/sluice-dev/sluice/internal/tenant"
	"github.com/sluice-dev/sluice/stream"
)

// Raw records come from sluice's ingesters, with every header of
// stream/record.go, or straight from agents' Kafka exporters (the
// OpenTelemetry Collector's and Grafana Alloy's kafka exporters), with none
// of them: the signal is the topic's, the tenant is in a header of the
// agent's choosing (include_metadata_keys: [X-Scope-OrgID]) or is the
// configured default, the encoding is the configured one, and the item
// count is the decoder's.

// Encodings of raw records without a content-type header (Config.RawEncoding),
// named as the Collector's Kafka exporter names them.
const (
	EncodingOTLPProto = "otlp_proto"
	EncodingOTLPJSON  = "otlp_json"
)

// recordTenant is the tenant of r, a raw record: its sluice-tenant header
// (an ingester's), else the header named header (compared ignoring case,
// as agents spell it as their users wrote it; "" reads none), else def.
// Every name must be a valid tenant (internal/tenant), and when both
// headers are set, or the header is repeated (the Collector writes one
// header per metadata value), they must agree: a record is never split
// between tenants or given to one of several.
func recordTenant(r *stream.Record, header, def string) (string, error) {
	own, err := r.Tenant()
	if err != nil {
		return "", err
	}
	if header == "" {
		return cmp.Or(own, def), nil
	}
	named, key := "", ""
	for i := range r.Headers {
		h := &r.Headers[i]
		if len(h.Value) == 0 || !strings.EqualFold(h.Key, header) {
			continue
		}
		v := string(h.Value)
		if err := tenant.Validate(v); err != nil {
			return "", fmt.Errorf("record %s/%d@%d: header %s: %w", r.Topic, r.Partition, r.Offset, h.Key, err)
		}
		if named != "" && v != named {
			return "", fmt.Errorf("record %s/%d@%d: header %s names two tenants, %q and %q", r.Topic, r.Partition, r.Offset, h.Key, named, v)
		}
		named, key = v, h.Key
	}
	if own != "" && named != "" && own != named {
		return "", fmt.Errorf("record %s/%d@%d: headers %s (%q) and %s (%q) name different tenants", r.Topic, r.Partition, r.Offset, stream.HeaderTenant, own, key, named)
	}
	return cmp.Or(own, named, def), nil
}

// recordJSON reports whether r, a raw record, holds OTLP/JSON rather than
// OTLP protobuf: its content-type header (parameters and case ignored), or
// when it has none, json (worker.raw_encoding otlp_json). Other media types
// are an error naming the record.
func recordJSON(r *stream.Record, json bool) (bool, error) {
	ct := r.Header(stream.HeaderContentType)
	if len(ct) == 0 {
		return json, nil
	}
	if string(ct) == stream.ContentTypeOTLPProto { // the ingesters' records
		return false, nil
	}
	mt, _, _ := bytes.Cut(ct, []byte{';'})
	mt = bytes.TrimSpace(mt)
	switch {
	case bytes.EqualFold(mt, []byte(stream.ContentTypeOTLPProto)), bytes.EqualFold(mt, []byte("application/protobuf")):
		return false, nil
	case bytes.EqualFold(mt, []byte(stream.ContentTypeOTLPJSON)):
		return true, nil
	}
	return false, fmt.Errorf("record %s/%d@%d: content-type %q is not OTLP (valid: %s, %s; none: worker.raw_encoding)",
		r.Topic, r.Partition, r.Offset, truncate(ct, 64), stream.ContentTypeOTLPProto, stream.ContentTypeOTLPJSON)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return strings.ToValidUTF8(string(b[:n]), "") + "..."
	}
	return string(b)
}

// setHeader sets the header key of r to value, in place when r has it.
func setHeader(r *stream.Record, key string, value []byte) {
	for i := range r.Headers {
		if r.Headers[i].Key == key {
			r.Headers[i].Value = value
			return
		}
	}
	r.Headers = append(r.Headers, stream.Header{Key: key, Value: value})
}
