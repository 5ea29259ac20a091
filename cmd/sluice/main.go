// Command sluice is the OpenTelemetry pipeline over a message bus: OTLP
// ingest, workers and sinks, in one process (`sluice run`) or one role per
// process (`sluice ingest`, `sluice worker`, `sluice sink`).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/app"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var cfgFile string
	root := &cobra.Command{
		Use:   "sluice",
		Short: "OpenTelemetry pipeline over Kafka or NATS JetStream",
		Long: `sluice receives OTLP (metrics, logs, traces) over gRPC and HTTP, writes it to a
message bus (Kafka, NATS JetStream, or a NATS server embedded in the process),
processes it in horizontally scaled workers and delivers it to sinks.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&cfgFile, "config", "c", "sluice.yaml", "configuration file")

	role := func(use, short string, roles func(cmd *cobra.Command) app.Roles) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := app.Load(cfgFile)
				if err != nil {
					return err
				}
				log := app.NewLogger(cfg.Log, os.Stderr)
				log.Info("starting sluice", "version", app.VersionString(), "config", cfgFile, "bus", cfg.Bus.Kind)
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				return app.Run(ctx, cfg, roles(cmd), log)
			},
		}
	}
	root.AddCommand(
		role("run", "Run every role in one process: ingest, worker and all sinks", func(*cobra.Command) app.Roles { return app.All }),
		role("ingest", "Run the OTLP/gRPC and OTLP/HTTP ingest servers", func(*cobra.Command) app.Roles { return app.Roles{Ingest: true} }),
		role("worker", "Run a worker: raw topics to processed topics", func(*cobra.Command) app.Roles { return app.Roles{Worker: true} }),
	)
	var sinkNames []string
	sink := role("sink", "Run sinks: processed topics to their destinations", func(*cobra.Command) app.Roles {
		if len(sinkNames) == 0 {
			return app.Roles{AllSinks: true}
		}
		return app.Roles{Sinks: sinkNames}
	})
	sink.Flags().StringSliceVar(&sinkNames, "name", nil, "run only the sinks with these names (default: all configured sinks)")
	root.AddCommand(sink)

	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration file and the files it names (ingest tokens and TLS), and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := app.Load(cfgFile)
			if err != nil {
				return err
			}
			if err := app.CheckFiles(cfg); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", cfgFile)
			return nil
		},
	}
	version := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "sluice", app.VersionString())
		},
	}
	root.AddCommand(check, version, newRulesCmd(), newCardinalityCmd(&cfgFile), newTapCmd(&cfgFile), newLagCmd(&cfgFile), newTopicsCmd(&cfgFile),
		newReplayCmd(&cfgFile), newBenchCmd())
	return root
}
