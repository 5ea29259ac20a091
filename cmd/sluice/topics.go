package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/app"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/stream"
)

// newTopicsCmd is `sluice topics`: create and describe the pipeline's
// topics. cfgFile is the root's --config.
func newTopicsCmd(cfgFile *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "Create or describe the topics of the pipeline",
		Long: `The pipeline's topics are the raw and processed topic of each signal, the
dead-letter topic and the aggregation topic, named with bus.topic_prefix and
created with bus.partitions, bus.retention and bus.max_record_bytes
(worker.dead_letter_max_bytes for the dead-letter topic). Every sluice
creates the missing ones when it starts; topics create does it ahead of
time (where the processes may not create topics, or to check the settings).`,
		Args: cobra.NoArgs,
	}
	create := &cobra.Command{
		Use:   "create",
		Short: "Create the topics the configuration needs that do not exist, and check the settings of those that do",
		Long: `create creates the missing topics of the pipeline with the configured settings
and reports the topics that exist. It never changes an existing topic: one
whose partitions, retention, largest record or replicas differ from the
configuration is reported, and create then fails, so that a script notices.
Running it again changes nothing.`,
		Example: `  sluice topics create -c sluice.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := app.Load(*cfgFile)
			if err != nil {
				return err
			}
			bus, err := app.OpenToolBus(cfg, toolLogger(cmd), true)
			if err != nil {
				return err
			}
			defer bus.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			return createTopics(ctx, cfg, bus, cmd.OutOrStdout())
		},
	}
	var output string
	describe := &cobra.Command{
		Use:   "describe",
		Short: "Describe the topics of the pipeline: partitions, retention, compression, replicas, records, size",
		Long: `describe shows each topic of the pipeline as the bus has it: partitions,
replicas, retention, the largest record it takes, how it compresses
(Kafka: compression.type, "producer" keeping what the producer sent; NATS:
the stream's compression), the records it holds and its size on disk (Kafka:
of the leader replicas, as the brokers' log directories report it). A topic
that does not exist is shown as missing. -o json also gives the bus's own
settings of each topic.`,
		Example: `  sluice topics describe -c sluice.yaml
  sluice topics describe -o json | jq '.[] | {name, records}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o must be table or json, not %q", output)
			}
			cfg, err := app.Load(*cfgFile)
			if err != nil {
				return err
			}
			bus, err := app.OpenToolBus(cfg, toolLogger(cmd), false)
			if err != nil {
				return err
			}
			defer bus.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			infos, err := bus.DescribeTopics(ctx, topicNames(cfg)...)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(topicsJSON(infos))
			}
			return writeTopicsTable(cmd.OutOrStdout(), infos)
		},
	}
	describe.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.AddCommand(create, describe)
	return cmd
}

func topicNames(cfg *config.Config) []string {
	var names []string
	for _, s := range app.TopicSpecs(cfg) {
		names = append(names, s.Name)
	}
	return names
}

// wantReplicas is the replica count the configuration asks of created
// topics; 0 when it leaves it to the bus.
func wantReplicas(cfg *config.Config) int {
	switch cfg.Bus.Kind {
	case "kafka":
		return max(0, int(cfg.Bus.Kafka.ReplicationFactor))
	case "nats":
		return max(1, cfg.Bus.NATS.Replicas)
	}
	return 1
}

// createTopics creates the missing topics of cfg and reports, one line per
// topic, what it created, what exists as configured and what differs.
func createTopics(ctx context.Context, cfg *config.Config, bus app.ToolBus, out io.Writer) error {
	specs := app.TopicSpecs(cfg)
	before, err := bus.DescribeTopics(ctx, topicNames(cfg)...)
	if err != nil {
		return err
	}
	var missing []stream.TopicSpec
	for i, s := range specs {
		if !before[i].Exists {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		if err := bus.EnsureTopics(ctx, missing...); err != nil {
			return fmt.Errorf("creating topics: %w", err)
		}
	}
	differ := 0
	for i, s := range specs {
		if !before[i].Exists {
			fmt.Fprintf(out, "created  %s\n", s.Name)
			continue
		}
		diffs := topicDiffs(s, before[i], wantReplicas(cfg))
		if len(diffs) == 0 {
			fmt.Fprintf(out, "exists   %s\n", s.Name)
			continue
		}
		differ++
		fmt.Fprintf(out, "differs  %s: %s\n", s.Name, strings.Join(diffs, "; "))
	}
	if differ > 0 {
		return fmt.Errorf("%d topics exist with other settings than %s asks for; sluice never changes an existing topic: alter them with the bus's tools, or change the configuration", differ, cfg.File())
	}
	return nil
}

// topicDiffs lists how topic t differs from spec s (and the configured
// replicas; 0: any).
func topicDiffs(s stream.TopicSpec, t stream.TopicInfo, replicas int) []string {
	var d []string
	if s.Partitions > 0 && t.Partitions != s.Partitions {
		d = append(d, fmt.Sprintf("%d partitions, configured %d (bus.partitions)", t.Partitions, s.Partitions))
	}
	if s.Retention > 0 && t.Retention != s.Retention {
		d = append(d, fmt.Sprintf("retention %s, configured %s (bus.retention)", duration(t.Retention), duration(s.Retention)))
	}
	if s.MaxRecordBytes > 0 && t.MaxRecordBytes != s.MaxRecordBytes {
		d = append(d, fmt.Sprintf("largest record %d bytes, configured %d", t.MaxRecordBytes, s.MaxRecordBytes))
	}
	if replicas > 0 && t.Replicas != replicas {
		d = append(d, fmt.Sprintf("%d replicas, configured %d", t.Replicas, replicas))
	}
	return d
}

// duration writes d without trailing zero units (24h, not 24h0m0s); 0 is
// "unlimited".
func duration(d time.Duration) string {
	if d == 0 {
		return "unlimited"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// bytesText writes n in binary units; -1 (unknown) is "-".
func bytesText(n int64) string {
	if n < 0 {
		return "-"
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatInt(n, 10) + "B"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + units[i]
}

func writeTopicsTable(out io.Writer, infos []stream.TopicInfo) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICAS\tRETENTION\tMAX RECORD\tCOMPRESSION\tRECORDS\tSIZE")
	for _, t := range infos {
		if !t.Exists {
			fmt.Fprintf(tw, "%s\t(missing)\t\t\t\t\t\t\n", t.Name)
			continue
		}
		compact := ""
		if t.Compact {
			compact = " (compacted)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s%s\t%s\t%s\t%s\t%s\n", t.Name, t.Partitions, t.Replicas, duration(t.Retention), compact,
			bytesText(int64(t.MaxRecordBytes)), t.Compression, dash(t.Records), bytesText(t.Bytes))
	}
	return tw.Flush()
}

// topicJSON is a topic of `sluice topics describe -o json`.
type topicJSON struct {
	Name             string            `json:"name"`
	Exists           bool              `json:"exists"`
	Partitions       int32             `json:"partitions"`
	Replicas         int               `json:"replicas"`
	RetentionSeconds float64           `json:"retention_seconds"`
	MaxRecordBytes   int32             `json:"max_record_bytes"`
	Compact          bool              `json:"compact"`
	Compression      string            `json:"compression"`
	Records          int64             `json:"records"`
	Bytes            int64             `json:"bytes"`
	Config           map[string]string `json:"config,omitempty"`
}

func topicsJSON(infos []stream.TopicInfo) []topicJSON {
	out := make([]topicJSON, len(infos))
	for i, t := range infos {
		out[i] = topicJSON{Name: t.Name, Exists: t.Exists, Partitions: t.Partitions, Replicas: t.Replicas, RetentionSeconds: t.Retention.Seconds(),
			MaxRecordBytes: t.MaxRecordBytes, Compact: t.Compact, Compression: t.Compression, Records: t.Records, Bytes: t.Bytes, Config: t.Config}
	}
	return out
}
