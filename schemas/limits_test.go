package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	common "go.opentelemetry.io/proto/otlp/common/v1"
)

// The contract between the ingester and the workers: what the ingester's
// check (otlpwire.Options.Check) lets through, the decoder decodes, and
// what the decoder refuses for the limits of otlpwire/limits.go, the
// ingester refused, item by item, keeping the valid items beside it.

// deepAny is an AnyValue of depth levels of arrays around a string.
func deepAny(depth int) *common.AnyValue {
	v := &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: "leaf"}}
	for range depth {
		v = &common.AnyValue{Value: &common.AnyValue_ArrayValue{ArrayValue: &common.ArrayValue{Values: []*common.AnyValue{v}}}}
	}
	return v
}

// badMarker is replaced in the encoding by invalid UTF-8 of the same length
// (proto.Marshal refuses to write invalid UTF-8).
const badMarker = "BADUTF8"

var badBytes = []byte("BAD\xff\xfe\xfd8")

// limitCase is a request of sig with three items whose second item's first
// attribute is kv; bad says whether the decoder must refuse it.
type limitCase struct {
	name string
	kv   *common.KeyValue
	bad  bool
}

func limitCases() []limitCase {
	str := func(s string) *common.AnyValue {
		return &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: s}}
	}
	return []limitCase{
		{"valid", &common.KeyValue{Key: "k", Value: str("v")}, false},
		{"invalid UTF-8 key", &common.KeyValue{Key: badMarker, Value: str("v")}, true},
		{"invalid UTF-8 value", &common.KeyValue{Key: "k", Value: str(badMarker)}, true},
		{"empty key", &common.KeyValue{Key: "", Value: str("v")}, false},
		{"depth 63", &common.KeyValue{Key: "k", Value: deepAny(63)}, false},
		{"depth 64", &common.KeyValue{Key: "k", Value: deepAny(64)}, false},
		{"depth 65", &common.KeyValue{Key: "k", Value: deepAny(65)}, true},
		{"depth 5000", &common.KeyValue{Key: "k", Value: deepAny(5000)}, true},
		{"invalid UTF-8 deep in a kvlist", &common.KeyValue{Key: "k", Value: &common.AnyValue{Value: &common.AnyValue_KvlistValue{
			KvlistValue: &common.KeyValueList{Values: []*common.KeyValue{{Key: badMarker, Value: str("v")}}}}}}, true},
	}
}

// limitRequest encodes a request of sig, three items, with kv the first
// attribute of the second item (the second data point of the first metric).
func limitRequest(t testing.TB, sig otlpwire.Signal, kv *common.KeyValue) []byte {
	t.Helper()
	shape := otlptest.Shape{Resources: 1, Items: 3, Points: 3}
	var m proto.Message
	set := func(attrs *[]*common.KeyValue) { *attrs = append([]*common.KeyValue{kv}, *attrs...) }
	switch sig {
	case otlpwire.Metrics:
		req := otlptest.Metrics(shape)
		set(&req.ResourceMetrics[0].ScopeMetrics[0].Metrics[0].GetGauge().DataPoints[1].Attributes)
		m = req
	case otlpwire.Logs:
		req := otlptest.Logs(shape)
		set(&req.ResourceLogs[0].ScopeLogs[0].LogRecords[1].Attributes)
		m = req
	default:
		req := otlptest.Traces(shape)
		set(&req.ResourceSpans[0].ScopeSpans[0].Spans[1].Attributes)
		m = req
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(body, []byte(badMarker), badBytes)
}

// checkContract splits body with the ingester's check and decodes the
// chunks and the body as the worker would. It returns the split.
func checkContract(t testing.TB, sig otlpwire.Signal, body []byte) (otlpwire.Result, error) {
	t.Helper()
	var sp otlpwire.Splitter
	res, splitErr := sp.Split(sig, body, otlpwire.Options{Key: otlpwire.KeyNone, Check: true})
	b := NewBuilder(sig, nil)
	defer b.Build().Release()
	if splitErr == nil {
		items := 0
		for k, c := range res.Chunks {
			n, err := b.Append(c.Value)
			if err != nil {
				t.Fatalf("chunk %d the ingester accepts: the worker refuses it: %v", k, err)
			}
			items += n
		}
	}
	// A request without items writes nothing: the worker never sees it.
	// The ingester must not pass on whole a request the worker refuses.
	if _, err := NewBuilder(sig, nil).Append(body); err != nil && splitErr == nil && len(res.Chunks) == 1 && bytes.Equal(res.Chunks[0].Value, body) {
		t.Fatalf("the worker refuses the request (%v); the ingester writes it whole", err)
	}
	return res, splitErr
}

// limitError says whether a decoder error is one of otlpwire/limits.go's.
func limitError(err error) bool {
	if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "invalid UTF-8") && (strings.Contains(s, "AnyValue") || strings.Contains(s, "KeyValue")) ||
		strings.Contains(s, "nested deeper")
}

func TestLimitsContract(t *testing.T) {
	for _, sig := range otlpwire.Signals {
		for _, c := range limitCases() {
			t.Run(fmt.Sprintf("%v/%s", sig, c.name), func(t *testing.T) {
				body := limitRequest(t, sig, c.kv)
				res, err := checkContract(t, sig, body)
				if err != nil {
					t.Fatalf("split: %v", err)
				}
				want := 0
				if c.bad {
					want = 1
				}
				total := otlptest.Shape{Resources: 1, Items: 3, Points: 3}.ItemCount(sig)
				if res.Invalid != want || res.Rejected != want || res.Items != total-want {
					t.Fatalf("invalid %d rejected %d items %d, want %d %d %d (%s)", res.Invalid, res.Rejected, res.Items, want, want, total-want, res.RejectReason)
				}
				if c.bad && !strings.Contains(res.RejectReason, ".attributes[0].") {
					t.Errorf("reason %q does not name the attribute", res.RejectReason)
				}
				// The worker's side: the invalid items alone, for the DLQ.
				var sp otlpwire.Splitter
				inv, err := sp.Invalid(sig, body, 0)
				if err != nil || inv.Items != want || inv.Invalid != want {
					t.Fatalf("Invalid: %v, %d items (%d invalid), want %d", err, inv.Items, inv.Invalid, want)
				}
				for _, ch := range inv.Chunks {
					if _, err := NewBuilder(sig, nil).Append(ch.Value); err == nil || !limitError(err) {
						t.Errorf("the invalid items' chunk decodes with %v, want a limit error", err)
					}
				}
				_, decErr := NewBuilder(sig, nil).Append(body)
				if (decErr != nil) != c.bad {
					t.Fatalf("decoder on the whole request: %v, want refused %v", decErr, c.bad)
				}
			})
		}
	}
}

// TestLimitsContractCorpora: the corpora and random requests, all valid,
// pass the check whole and decode.
func TestLimitsContractCorpora(t *testing.T) {
	for _, c := range otlptest.Corpora() {
		res, err := checkContract(t, c.Signal, c.Body)
		if err != nil || res.Rejected != 0 || res.Items != c.Items {
			t.Fatalf("%s: %v, %d rejected, %d of %d items", c.Name, err, res.Rejected, res.Items, c.Items)
		}
	}
	for _, sig := range otlpwire.Signals {
		g := otlptest.NewGen(11+uint64(sig), otlptest.GenOptions{})
		for range 50 {
			if _, err := checkContract(t, sig, g.Request(sig)); err != nil {
				t.Fatalf("%v: %v", sig, err)
			}
		}
	}
}

// FuzzLimits is differential: what the ingester's check accepts, the
// worker's decoder decodes without a limit error; what the decoder refuses
// for a limit, the check refused; and Split with Check and Invalid share
// out the request's items.
func FuzzLimits(f *testing.F) {
	for _, sig := range otlpwire.Signals {
		f.Add(uint8(sig), otlptest.Request(sig, otlptest.Shape{Resources: 1, Items: 2, Points: 2}))
		for _, c := range limitCases() {
			if !strings.Contains(c.name, "5000") {
				f.Add(uint8(sig), limitRequest(f, sig, c.kv))
			}
		}
		g := otlptest.NewGen(3+uint64(sig), otlptest.GenOptions{Unknown: true})
		f.Add(uint8(sig), g.Request(sig))
	}
	f.Fuzz(func(t *testing.T, s uint8, body []byte) {
		sig := otlpwire.Signal(s % 3)
		res, err := checkContract(t, sig, body)
		if err != nil {
			return
		}
		n, err := otlpwire.Count(sig, body)
		if err != nil {
			t.Fatalf("Split accepts what Count refuses: %v", err)
		}
		var sp otlpwire.Splitter
		inv, err := sp.Invalid(sig, body, 0)
		if err != nil || inv.Items != res.Invalid || res.Items+res.Invalid != n {
			t.Fatalf("Split: %d items, %d invalid; Invalid: %d items (%v); request holds %d", res.Items, res.Invalid, inv.Items, err, n)
		}
	})
}
