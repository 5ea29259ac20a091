package kafkasink

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/kafka"
)

// Records whose sluice-tenant header is not a valid tenant name are
// refused (the runner dead-letters them) and reach neither the topic nor a
// record key; the valid records beside them, and one without a tenant, are
// written with their tenants.
func TestInvalidTenantsAreRejected(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "otlp-logs")
	s, err := New(Config{Brokers: brokers, Topic: topic, Key: "tenant", CreateTopics: true, Partitions: 1}, "k", sinks.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var recs []*stream.Record
	want := map[string]int{} // items by tenant
	for seed, tenant := range []string{"team-a", "../../x", "team-b", "victim|other", "", "team-a"} {
		m := input(otlpwire.Logs, seed)
		r := arrowRecord(t, otlpwire.Logs, m, tenant)
		if tenant == "" {
			r.Headers = r.Headers[:2] // no tenant header
		}
		recs = append(recs, r)
		if tenant != "../../x" && tenant != "victim|other" {
			pb, _ := proto.Marshal(m)
			n, _ := otlpwire.Count(otlpwire.Logs, pb)
			want[tenant] += n
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // bounds a hang; not an assertion
	defer cancel()
	var rej *sinks.RejectedError
	if err := s.Write(ctx, recs); !errors.As(err, &rej) || len(rej.Records) != 2 || !strings.Contains(rej.Reason, "header sluice-tenant: invalid tenant") {
		t.Fatalf("Write: %v, want the two records of invalid tenants rejected", err)
	}
	for _, r := range rej.Records {
		if tenant := string(r.Header(stream.HeaderTenant)); tenant != "../../x" && tenant != "victim|other" {
			t.Errorf("record of tenant %q rejected", tenant)
		}
	}

	bus, err := kafka.New(kafka.Config{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	c, err := bus.Consume(stream.ConsumerConfig{Group: kafkatest.Group(t, "check"), Topics: []string{topic}, Start: stream.Start{Kind: stream.StartEarliest}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := map[string]int{}
	for n := 0; n < 4; {
		polled, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("after %d records: %v", n, err)
		}
		for _, r := range polled {
			items, err := otlpwire.Count(otlpwire.Logs, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			if string(r.Key) != string(r.Header(stream.HeaderTenant)) {
				t.Errorf("record keyed %q of tenant %q", r.Key, r.Header(stream.HeaderTenant))
			}
			got[string(r.Header(stream.HeaderTenant))] += items
			n++
		}
		if err := c.Commit(ctx, polled...); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != len(want) {
		t.Errorf("items by tenant %v, want %v", got, want)
	}
	for tenant, n := range want {
		if got[tenant] != n {
			t.Errorf("tenant %q: %d items written, want %d", tenant, got[tenant], n)
		}
	}
	lag, err := c.Lag(ctx)
	if err != nil || lag != 0 {
		t.Errorf("%d more records on the topic (%v), want none", lag, err) // every record read is committed
	}
}
