package config

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/internal/tenant"
)

// validateRawTopics checks the worker's keys for raw topics written by
// agents (worker.raw_topics and the keys that say how to read them).
func (c *Config) validateRawTopics(bad func(path, format string, args ...any)) {
	w := c.Worker
	if len(w.RawTopics) > 0 && c.Bus.Kind != "kafka" {
		bad("worker.raw_topics", "raw_topics needs bus kind kafka (agents' exporters write to Kafka), not %q", c.Bus.Kind)
	}
	seen := map[string]string{}
	for _, sig := range slices.Sorted(maps.Keys(w.RawTopics)) {
		name, path := w.RawTopics[sig], "worker.raw_topics."+sig
		switch sig {
		case "metrics", "logs", "traces":
		default:
			bad(path, "unknown signal %q (valid: metrics, logs, traces)", sig)
			continue
		}
		if msg := kafkaTopicName(name); msg != "" {
			bad(path, "topic %q: %s", name, msg)
			continue
		}
		if strings.HasPrefix(name, c.Bus.TopicPrefix+".") && name != c.Bus.TopicPrefix+".raw."+sig {
			bad(path, "topic %q is one of sluice's own under topic_prefix %q; name the agents' topic (e.g. otlp_%s)", name, c.Bus.TopicPrefix, sig)
			continue
		}
		if other, ok := seen[name]; ok {
			bad(path, "topic %q is also the raw topic of %s: each signal needs a topic of its own", name, other)
			continue
		}
		seen[name] = sig
	}
	if h := w.TenantHeader; h != "" && (len(h) > 256 || strings.ContainsFunc(h, func(r rune) bool { return r <= ' ' || r == 0x7f })) {
		bad("worker.tenant_header", "tenant_header %q must be a header name without spaces or control characters, at most 256 bytes", h)
	}
	if w.DefaultTenant != "" {
		if err := tenant.Validate(w.DefaultTenant); err != nil {
			bad("worker.default_tenant", "default_tenant: %v", err)
		}
	}
	switch w.RawEncoding {
	case "otlp_proto", "otlp_json":
	default:
		bad("worker.raw_encoding", "unknown raw_encoding %q (valid: otlp_proto, otlp_json)", w.RawEncoding)
	}
}

// kafkaTopicName says what is wrong with a Kafka topic name, "" if
// nothing: Kafka takes 1 to 249 of ASCII letters, digits, '.', '_' and '-',
// and not "." or "..".
func kafkaTopicName(name string) string {
	switch {
	case name == "":
		return "empty"
	case len(name) > 249:
		return "longer than 249 characters"
	case name == "." || name == "..":
		return `"." and ".." are not topic names`
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "character " + strconv.Quote(name[i:i+1]) + " is not allowed (valid: letters, digits, '.', '_', '-')"
		}
	}
	return ""
}
