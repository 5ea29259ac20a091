package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpjson"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
)

// countingBus checks and counts what is produced to it.
type countingBus struct {
	mu    sync.Mutex
	items int
	bad   []string
}

func (b *countingBus) Partitions(string) int32 { return 3 }

func (b *countingBus) Produce(_ context.Context, recs ...*stream.Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range recs {
		sig, err := otlpwire.ParseSignal(string(r.Header(stream.HeaderSignal)))
		if err != nil {
			b.bad = append(b.bad, err.Error())
			continue
		}
		n, err := otlpwire.Count(sig, r.Value)
		if err != nil {
			b.bad = append(b.bad, "record value: "+err.Error())
		}
		if h := string(r.Header(stream.HeaderItems)); h != strconv.Itoa(n) {
			b.bad = append(b.bad, "items header "+h+", counted "+strconv.Itoa(n))
		}
		b.items += n
	}
	return nil
}

func (b *countingBus) take() (int, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, bad := b.items, b.bad
	b.items, b.bad = 0, nil
	return n, bad
}

// decodeForTest undoes the encoding and JSON the way an independent client
// library would, to know what the handler should have written.
func decodeForTest(sig otlpwire.Signal, ct, ce string, body []byte) ([]byte, bool) {
	switch strings.ToLower(strings.TrimSpace(ce)) {
	case "", "identity":
	case "gzip":
		r, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, false
		}
		if body, err = io.ReadAll(r); err != nil {
			return nil, false
		}
	case "zstd":
		d, _ := zstd.NewReader(nil)
		defer d.Close()
		var err error
		if body, err = d.DecodeAll(body, nil); err != nil {
			return nil, false
		}
	}
	if enc, _ := requestEncoding([]string{ct}); enc == encJSON {
		pb, err := otlpjson.UnmarshalRequest(sig, body, nil)
		return pb, err == nil
	}
	return body, true
}

func FuzzHTTP(f *testing.F) {
	for sig, pb := range samples(f) {
		path := signalPaths[sig]
		js, _ := otlpjson.MarshalRequest(sig, pb, nil)
		f.Add(path, contentTypeProto, "", pb)
		f.Add(path, contentTypeJSON, "", js)
		f.Add(path, contentTypeProto, "gzip", gzipped(pb))
		f.Add(path, contentTypeJSON+"; charset=utf-8", "zstd", zstded(js))
		f.Add(path, contentTypeProto, "", pb[:len(pb)/2])
	}
	big := metricsRequest(1, 2, 3)
	big.ResourceMetrics[0].ScopeMetrics[0].Metrics[1].Description = strings.Repeat("d", 5000)
	f.Add(PathMetrics, contentTypeProto, "", mustMarshal(f, big))
	f.Add(PathLogs, contentTypeJSON, "", []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}}]}]}]}`))
	f.Add(PathTraces, contentTypeJSON, "", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}`))
	f.Add("/v1/other", "text/plain", "br", []byte("hello"))
	f.Add(PathMetrics, contentTypeProto, "gzip", gzipped(make([]byte, 100_000)))

	bus := &countingBus{}
	ing, err := New(Config{Topics: testTopics, MaxRecordBytes: 4096, MaxRequestBytes: 64 << 10, Logger: quietLogger()}, bus)
	if err != nil {
		f.Fatal(err)
	}
	h := ing.HTTPHandler()
	allowed := map[int]bool{200: true, 400: true, 404: true, 405: true, 413: true, 415: true}

	f.Fuzz(func(t *testing.T, path, ct, ce string, body []byte) {
		req, err := http.NewRequest(http.MethodPost, "http://sluice"+path, bytes.NewReader(body))
		if err != nil {
			t.Skip()
		}
		req.Header["Content-Type"] = []string{ct}
		if ce != "" {
			req.Header["Content-Encoding"] = []string{ce}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got, bad := bus.take()
		if len(bad) > 0 {
			t.Fatalf("bad records: %v", bad)
		}
		if !allowed[rec.Code] {
			t.Fatalf("status %d: %q", rec.Code, rec.Body.Bytes())
		}
		isJSON := rec.Header().Get("Content-Type") == contentTypeJSON
		if rec.Code != 200 {
			if got != 0 {
				t.Fatalf("status %d but %d items produced", rec.Code, got)
			}
			var st statuspb.Status
			if isJSON {
				err = protojson.Unmarshal(rec.Body.Bytes(), &st)
			} else {
				err = proto.Unmarshal(rec.Body.Bytes(), &st)
			}
			if err != nil || st.Message == "" {
				t.Fatalf("status %d with body %q: %v", rec.Code, rec.Body.Bytes(), err)
			}
			return
		}
		sig, _ := pathSignal(path)
		pb, ok := decodeForTest(sig, ct, ce, body)
		if !ok {
			t.Fatalf("200 for a body the reference decoders refuse")
		}
		want, err := otlpwire.Count(sig, pb)
		if err != nil {
			t.Fatalf("200 for a body otlpwire refuses: %v", err)
		}
		// The three responses share their layout: read them as metrics'.
		var resp colmetricspb.ExportMetricsServiceResponse
		if isJSON {
			var pbResp []byte
			if pbResp, err = otlpjson.UnmarshalResponse(sig, rec.Body.Bytes(), nil); err == nil {
				err = proto.Unmarshal(pbResp, &resp)
			}
		} else {
			err = proto.Unmarshal(rec.Body.Bytes(), &resp)
		}
		if err != nil {
			t.Fatalf("response %q: %v", rec.Body.Bytes(), err)
		}
		if rejected := int(resp.GetPartialSuccess().GetRejectedDataPoints()); got+rejected != want {
			t.Fatalf("%d items produced + %d rejected, request holds %d", got, rejected, want)
		}
	})
}
