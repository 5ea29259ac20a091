package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// The workload sends every (series, time) once, each series' times
// increase, the series of a pod stay distinct without debug_id (so that
// deleting it collapses nothing), Excluded counts the dropped route, and
// the pods are balanced over the partitions of the resource key.
func TestK8sLoad(t *testing.T) {
	for _, perReq := range []int{1, 1000} {
		t.Run(fmt.Sprint(perReq), func(t *testing.T) {
			start := time.Now().Add(-time.Hour)
			l, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{PerRequest: perReq, Start: start, Step: time.Second, Partitions: 6})
			if err != nil {
				t.Fatal(err)
			}
			requests := 3 * l.RequestsPerStep()
			if perReq == 1 {
				requests = l.RequestsPerStep() + 500 // a step and a bit
			}
			last := map[string]uint64{}
			withoutDebug := map[string]bool{}
			debugIDs := map[string]string{}
			perPartition := map[int32]map[string]bool{}
			excluded := 0
			var sp otlpwire.Splitter
			var buf []byte
			for j := range requests {
				buf = l.Request(buf, j)
				var req colmetrics.ExportMetricsServiceRequest
				if err := proto.Unmarshal(buf, &req); err != nil {
					t.Fatalf("request %d: %v", j, err)
				}
				res, err := sp.Split(otlpwire.Metrics, buf, otlpwire.Options{Partitions: 6, Key: otlpwire.KeyResource})
				if err != nil {
					t.Fatal(err)
				}
				for _, rm := range req.ResourceMetrics {
					pod := kv(rm.Resource.Attributes)
					if len(res.Chunks) == 1 {
						if perPartition[res.Chunks[0].Partition] == nil {
							perPartition[res.Chunks[0].Partition] = map[string]bool{}
						}
						perPartition[res.Chunks[0].Partition][pod] = true
					}
					for _, pt := range rm.ScopeMetrics[0].Metrics[0].GetGauge().DataPoints {
						attrs := kv(pt.Attributes)
						if pt.TimeUnixNano <= last[pod+attrs] {
							t.Fatalf("request %d: series %s %s at %d, after %d", j, pod, attrs, pt.TimeUnixNano, last[pod+attrs])
						}
						if pt.TimeUnixNano < uint64(start.Truncate(time.Second).UnixNano()) || pt.TimeUnixNano >= uint64(l.End(requests).UnixNano()) {
							t.Fatalf("request %d: time %d outside the load", j, pt.TimeUnixNano)
						}
						last[pod+attrs] = pt.TimeUnixNano
						i := strings.Index(attrs, "debug_id=")
						debugIDs[pod+attrs[:i]] = attrs[i:]
						withoutDebug[pod+attrs[:i]] = true
						if strings.Contains(attrs, "http.route=/health,") {
							excluded++
						}
					}
				}
			}
			if want := min(requests*perReq, 10_000); len(last) != want || len(withoutDebug) != want {
				t.Errorf("%d series, %d without debug_id; want %d", len(last), len(withoutDebug), want)
			}
			if got := l.Excluded(requests); got != excluded {
				t.Errorf("Excluded = %d, counted %d", got, excluded)
			}
			if perReq == 1 {
				var n []int
				for _, pods := range perPartition {
					n = append(n, len(pods))
				}
				slices.Sort(n)
				if len(n) != 6 || n[0] < 16 || n[5] > 17 {
					t.Errorf("pods per partition: %v, want 16 or 17 in each of 6", n)
				}
			}
		})
	}
}

// kv renders attributes as k=v, in order.
func kv(attrs []*common.KeyValue) string {
	var b strings.Builder
	for _, a := range attrs {
		v := a.Value.GetStringValue()
		if _, ok := a.Value.Value.(*common.AnyValue_IntValue); ok {
			v = fmt.Sprint(a.Value.GetIntValue())
		}
		fmt.Fprintf(&b, "%s=%s,", a.Key, v)
	}
	return b.String()
}
