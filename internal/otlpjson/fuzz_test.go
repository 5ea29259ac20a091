package otlpjson

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

var exampleFiles = map[otlpwire.Signal]string{
	otlpwire.Metrics: "metrics.json",
	otlpwire.Logs:    "logs.json",
	otlpwire.Traces:  "trace.json",
}

// FuzzUnmarshalRequest checks that the decoder never panics, agrees with
// the reference codec on what it accepts and what that decodes to, and that
// what it accepts survives encoding and decoding again.
func FuzzUnmarshalRequest(f *testing.F) {
	for sig, name := range exampleFiles {
		body, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(sig), body)
	}
	for _, s := range []string{
		`{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"5b8efff798038103d269b633813fc60c","kind":"SPAN_KIND_SERVER","links":[{"spanId":"eee19b7ec3c1b174"}]}]}]}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"traceId","value":{"arrayValue":{"values":[{"intValue":"-1"},{"doubleValue":"NaN"},{"bytesValue":"AQ=="}]}}}]}]}]}]}`,
		`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"exponentialHistogram":{"dataPoints":[{"scale":-3,"zeroCount":"2","positive":{"offset":-1,"bucketCounts":["1",2]},"exemplars":[{"traceId":"5B8EFFF798038103D269B633813FC60C","asInt":1e2}]}]}}]}]}]}`,
		`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"summary":{"dataPoints":[{"quantileValues":[{"quantile":0.5,"value":"Infinity"}]}]}}]}]}]}`,
		`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"SEVERITY_NUMBER_WARN","flags":1,"body":{"kvlistValue":{"values":[{"key":"k","value":null}]}},"unknown":{"a":[true,false,null]}}]}]}]}`,
		`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityText":"\ud83d\ude00\u00e9\n"}]}]}]}`,
	} {
		for _, sig := range otlpwire.Signals {
			f.Add(uint8(sig), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, s uint8, body []byte) {
		sig := otlpwire.Signals[int(s)%len(otlpwire.Signals)]
		got, err := checkUnmarshal(t, sig, false, body)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			return
		}
		pb, err := proto.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		js, err := MarshalRequest(sig, pb, nil)
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		back, err := UnmarshalRequest(sig, js, nil)
		if err != nil {
			t.Fatalf("decoding %s: %v", js, err)
		}
		m := loadReference().newMessage(sig, false)
		if err := proto.Unmarshal(back, m); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(m, got) {
			t.Fatalf("round trip of %q differs:\n%v\n%v", short(body), got, m)
		}
	})
}

// FuzzMarshalRequest checks that the encoder never panics, agrees with the
// reference codec on any protobuf input, and that its output decodes back.
func FuzzMarshalRequest(f *testing.F) {
	g := &filler{r: rand.New(rand.NewPCG(3, 4)), oneofs: map[protoreflect.FullName]int{}, sparse: true}
	for _, sig := range otlpwire.Signals {
		for range 4 {
			m := loadReference().newMessage(sig, false)
			g.fill(m.ProtoReflect(), 0)
			f.Add(uint8(sig), mustMarshal(m))
		}
	}
	f.Add(uint8(otlpwire.Traces), []byte{0x0a, 0x04, 0x12, 0x02, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, s uint8, pb []byte) {
		sig := otlpwire.Signals[int(s)%len(otlpwire.Signals)]
		js, err := checkMarshal(t, sig, false, pb)
		if err != nil {
			return
		}
		back, err := UnmarshalRequest(sig, js, nil)
		if err != nil {
			t.Fatalf("decoding %s: %v", short(js), err)
		}
		want, got := loadReference().newMessage(sig, false), loadReference().newMessage(sig, false)
		if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(pb, want); err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(back, got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("round trip differs:\n%v\n%v", want, got)
		}
	})
}
