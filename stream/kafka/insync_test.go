package kafka

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The topics EnsureTopics creates carry Config.MinInsyncReplicas as a topic
// config of their own; without it they keep the brokers' default.
func TestEnsureTopicsMinInsyncReplicas(t *testing.T) {
	for _, tc := range []struct {
		name    string
		minISR  int16
		want    string
		ofTopic bool // set on the topic, not inherited from the broker
	}{
		{"set", 1, "1", true},
		{"broker default", 0, "1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBus(t, Config{MinInsyncReplicas: tc.minISR})
			name := topic(t, b, 1)
			configs, err := b.admin.DescribeTopicConfigs(context.Background(), name)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := configs.On(name, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, kv := range rc.Configs {
				if kv.Key == "min.insync.replicas" {
					ofTopic := kv.Source == kmsg.ConfigSourceDynamicTopicConfig
					if kv.MaybeValue() != tc.want || ofTopic != tc.ofTopic {
						t.Errorf("min.insync.replicas = %s from %s, want %s (set on the topic: %v)", kv.MaybeValue(), kv.Source, tc.want, tc.ofTopic)
					}
					return
				}
			}
			t.Error("min.insync.replicas not among the topic's configs")
		})
	}
}

func TestConfigMinInsyncReplicas(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		err string
	}{
		{Config{Brokers: []string{"a:9092"}, MinInsyncReplicas: 2}, ""},
		{Config{Brokers: []string{"a:9092"}, ReplicationFactor: 3, MinInsyncReplicas: 2}, ""},
		{Config{Brokers: []string{"a:9092"}, ReplicationFactor: 1, MinInsyncReplicas: 2}, "must not exceed the replication factor"},
		{Config{Brokers: []string{"a:9092"}, MinInsyncReplicas: -1}, "min insync replicas must be positive"},
	} {
		_, err := New(tc.cfg)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("New(%+v): %v, want %q", tc.cfg, err, tc.err)
		}
	}
}
