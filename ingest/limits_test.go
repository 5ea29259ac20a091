package ingest

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// deepValue is an AnyValue of depth levels of arrays around a string.
func deepValue(depth int) *commonpb.AnyValue {
	v := &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "leaf"}}
	for range depth {
		v = &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{v}}}}
	}
	return v
}

// TestLimitsPartialSuccess: items the workers' decoder would refuse (an
// invalid UTF-8 key, an AnyValue nested 65 deep) are refused at ingest in
// the partial success answer, naming the first one's path and field; the
// valid items of the same request reach the bus. Over gRPC, HTTP protobuf
// and HTTP JSON.
func TestLimitsPartialSuccess(t *testing.T) {
	const total = 2 * 3 * 4
	cases := []struct {
		name, ct string
		grpc     bool
		badKey   bool // an invalid UTF-8 key (protobuf only: JSON strings are UTF-8)
		want     string
	}{
		{"http proto bad key", contentTypeProto, false, true, "resource_metrics[1].scope_metrics[0].metrics[2].gauge.data_points[1].attributes[0].key: invalid UTF-8"},
		{"http proto deep", contentTypeProto, false, false, "resource_metrics[1].scope_metrics[0].metrics[2].gauge.data_points[1].attributes[2].value: AnyValue nested deeper than 64"},
		{"http json deep", contentTypeJSON, false, false, "resource_metrics[1].scope_metrics[0].metrics[2].gauge.data_points[1].attributes[2].value: AnyValue nested deeper than 64"},
		{"grpc bad key", "", true, true, "resource_metrics[1].scope_metrics[0].metrics[2].gauge.data_points[1].attributes[0].key: invalid UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := metricsRequest(2, 3, 4)
			pt := req.ResourceMetrics[1].ScopeMetrics[0].Metrics[2].GetGauge().DataPoints[1]
			// A second bad item: counted, but the message names the first.
			pt2 := req.ResourceMetrics[1].ScopeMetrics[0].Metrics[2].GetGauge().DataPoints[3]
			if c.badKey {
				pt.Attributes[0].Key = "BADKEY"
				pt2.Attributes[0].Key = "BADKEY"
			} else {
				pt.Attributes = append(pt.Attributes, &commonpb.KeyValue{Key: "deep", Value: deepValue(65)})
				deep := 5000
				if c.ct == contentTypeJSON {
					deep = 1000 // within what the JSON encoder of the test writes
				}
				pt2.Attributes = append(pt2.Attributes, &commonpb.KeyValue{Key: "deep", Value: deepValue(deep)})
			}
			pb := bytes.ReplaceAll(mustMarshal(t, req), []byte("BADKEY"), []byte("BAD\xffEY"))
			bus := newBus(t, 2)
			ing := newIngester(t, Config{}, bus)
			srv := startServer(t, ing)
			var out colmetricspb.ExportMetricsServiceResponse
			if c.grpc {
				var in colmetricspb.ExportMetricsServiceRequest
				// The client's own marshalling refuses invalid UTF-8:
				// send the bytes as they are, as a raw codec would.
				if err := (proto.UnmarshalOptions{}).Unmarshal(pb, &in); err == nil {
					t.Fatal("the request should not unmarshal")
				}
				var resp RawMessage
				codec := rawCodec{fallback: encoding.GetCodecV2("proto")}
				err := dial(t, srv.GRPCAddr()).Invoke(context.Background(), "/"+grpcServices[otlpwire.Metrics].service+"/Export",
					RawMessage(pb), &resp, grpc.ForceCodecV2(codec))
				if err != nil {
					t.Fatal(err)
				}
				if err := proto.Unmarshal(resp, &out); err != nil {
					t.Fatal(err)
				}
			} else {
				body := pb
				if c.ct == contentTypeJSON {
					body = toJSON(t, otlpwire.Metrics, pb)
				}
				resp := httpReq{path: PathMetrics, contentType: c.ct, body: body}.do(t, srv.HTTPAddr())
				rb, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %q", resp.StatusCode, rb)
				}
				var err error
				if c.ct == contentTypeJSON {
					err = protojson.Unmarshal(rb, &out)
				} else {
					err = proto.Unmarshal(rb, &out)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			ps := out.GetPartialSuccess()
			if ps.GetRejectedDataPoints() != 2 || !strings.Contains(ps.GetErrorMessage(), c.want) {
				t.Errorf("partial success %v, want 2 rejected and %q", ps, c.want)
			}
			if got := busItems(t, bus, otlpwire.Metrics, ""); got != total-2 {
				t.Errorf("%d items on the bus, want %d", got, total-2)
			}
			if got := testutil.ToFloat64(ing.m.rejected.WithLabelValues("metrics", "invalid")); got != 2 {
				t.Errorf("rejected{reason=invalid} = %v, want 2", got)
			}
		})
	}
}
