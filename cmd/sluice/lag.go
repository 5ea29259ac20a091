package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/app"
	"github.com/sluice-dev/sluice/stream"
)

// groupLag is one row of `sluice lag`.
type groupLag struct {
	Role string `json:"role"`
	stream.PartitionLag
}

// MarshalJSON spells the fields of stream.PartitionLag in snake case.
func (g groupLag) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Role      string `json:"role"`
		Group     string `json:"group"`
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Committed int64  `json:"committed"`
		End       int64  `json:"end"`
		Lag       int64  `json:"lag"`
		InFlight  int64  `json:"in_flight"`
	}{g.Role, g.Group, g.Topic, g.Partition, g.Committed, g.End, g.Lag, g.InFlight})
}

// newLagCmd is `sluice lag`: each consumer group's lag. cfgFile is the
// root's --config.
func newLagCmd(cfgFile *string) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "lag",
		Short: "Show the lag of every consumer group of the pipeline, per topic and partition",
		Long: `lag shows, for every consumer group the configuration runs — the workers' on
the raw topics (worker.group), the aggregators' on the aggregation topic
(worker.group + ".aggregate") and each sink's on the processed topics of its
signals — how many records it has not committed yet, per partition.

Kafka: COMMITTED is the group's committed offset ("-" for none: then the lag
counts from the oldest record kept), END the partition's end offset. NATS
JetStream: one row per topic (PARTITION "-"), COMMITTED the stream sequence
after the group's acknowledged floor, LAG the records not yet delivered plus
IN-FLIGHT, those delivered and not acknowledged. lag only reads: it joins no
group and creates nothing.`,
		Example: `  sluice lag -c sluice.yaml
  sluice lag -o json | jq 'map(select(.lag > 1000))'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o must be table or json, not %q", output)
			}
			cfg, err := app.Load(*cfgFile)
			if err != nil {
				return err
			}
			groups, err := app.Groups(cfg)
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
			var rows []groupLag
			for _, g := range groups {
				lags, err := bus.GroupLag(ctx, g.Name, g.Topics...)
				if err != nil {
					return fmt.Errorf("group %s (%s): %w", g.Name, g.Role, err)
				}
				for _, l := range lags {
					rows = append(rows, groupLag{Role: g.Role, PartitionLag: l})
				}
			}
			if output == "json" {
				if rows == nil {
					rows = []groupLag{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			return writeLagTable(cmd.OutOrStdout(), rows)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func writeLagTable(out io.Writer, rows []groupLag) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tGROUP\tTOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tIN-FLIGHT")
	var total int64
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", r.Role, r.Group, r.Topic, dash(int64(r.Partition)), dash(r.Committed), r.End, r.Lag, r.InFlight)
		total += r.Lag
	}
	fmt.Fprintf(tw, "TOTAL\t\t\t\t\t\t%d\n", total)
	return tw.Flush()
}

// dash writes -1 (none) as "-".
func dash(n int64) string {
	if n < 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}
