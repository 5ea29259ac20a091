package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sluice-dev/sluice/app"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
)

// newReplayCmd is `sluice replay`: a range of the bus through (today's)
// rules into one sink. cfgFile is the root's --config.
func newReplayCmd(cfgFile *string) *cobra.Command {
	var (
		from, to, fromOffset, toOffset string
		rulesDir, sinkName, topic      string
		signals                        []string
		dryRun, resume                 bool
		rateItems                      float64
		rateBytes                      string
		checkpoint, output             string
		logEvery                       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Re-process a time range of the bus through the rules into one sink",
		Long: `replay reads a time range of the raw topics (or, with --topic processed, of the
processed topics) outside every consumer group, so the live pipeline is left as
it is, takes it through the worker's decoding and rules (--rules, default
rules.dir) and delivers it to one configured sink (--sink), keeping the
original timestamps. Points whose series the rules merge are merged within the
replay, per the rule's interval.

--from and --to take RFC 3339 times or durations before now (-6h); --to
defaults to the end of the topics when replay starts. On Kafka the range is
found in the brokers' time index per partition (--from-offset/--to-offset give
it by offset instead: N for every partition, or p:N,p:N). On NATS the start is
found by the server's store time and the range ends at the first record at or
after --to.

--dry-run runs the rules and writes nothing: per rule the items matched,
dropped, changed and merged, the series per metric before and after, and the
items in and out per signal. Ctrl-C stops after the batch in flight is
delivered and writes a checkpoint; --resume continues from it (leave --from and
--to out to take the checkpoint's range).`,
		Example: `  sluice replay -c sluice.yaml --from -24h --to -0h --sink mimir
  sluice replay -c sluice.yaml --from 2026-12-05T00:00:00Z --to 2026-12-06T00:00:00Z --rules ./rules-next --dry-run
  sluice replay -c sluice.yaml --sink mimir --rate 50000 --resume`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o must be table or json, not %q", output)
			}
			cfg, err := app.Load(*cfgFile)
			if err != nil {
				return err
			}
			now := time.Now()
			opts := app.ReplayOptions{Topic: topic, RulesDir: rulesDir, Sink: sinkName, DryRun: dryRun, Resume: resume,
				Rate: rateItems, Checkpoint: checkpoint}
			if rateBytes != "" {
				n, err := config.ParseByteSize(rateBytes)
				if err != nil || n < 0 {
					return fmt.Errorf("--rate-bytes: %q is not a size (e.g. 20MiB)", rateBytes)
				}
				opts.RateBytes = float64(n)
			}
			if opts.From, err = parseWhen(from, now); err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			if opts.To, err = parseWhen(to, now); err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			if opts.FromOffsets, err = parseOffsets(fromOffset); err != nil {
				return fmt.Errorf("--from-offset: %w", err)
			}
			if opts.ToOffsets, err = parseOffsets(toOffset); err != nil {
				return fmt.Errorf("--to-offset: %w", err)
			}
			if opts.FromOffsets != nil && !opts.From.IsZero() {
				return fmt.Errorf("--from and --from-offset exclude each other")
			}
			if opts.ToOffsets != nil && !opts.To.IsZero() {
				return fmt.Errorf("--to and --to-offset exclude each other")
			}
			if rateItems < 0 {
				return fmt.Errorf("--rate must not be negative")
			}
			for _, s := range signals {
				sig, err := otlpwire.ParseSignal(s)
				if err != nil {
					return fmt.Errorf("--signal: %w", err)
				}
				opts.Signals = append(opts.Signals, sig)
			}
			log := app.NewLogger(cfg.Log, os.Stderr)
			opts.Logger = log
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			bus, err := app.OpenReplayBus(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer bus.Close()
			prog := newProgress(os.Stderr, log, logEvery)
			opts.Progress = prog.update
			rep, err := app.Replay(ctx, cfg, bus, opts)
			prog.finish()
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			writeReplayReport(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "start of the range: RFC 3339 time or a duration before now (-6h)")
	f.StringVar(&to, "to", "", "end of the range, excluded (default: the end of the topics at the start)")
	f.StringVar(&fromOffset, "from-offset", "", "start by position instead: N (every partition) or p:N,p:N")
	f.StringVar(&toOffset, "to-offset", "", "end by position instead, excluded: N or p:N,p:N")
	f.StringVar(&rulesDir, "rules", "", "rules directory applied to raw records (default: rules.dir of the config)")
	f.StringVar(&sinkName, "sink", "", "name of the configured sink to deliver to")
	f.StringVar(&topic, "topic", "raw", "raw (through the rules) or processed (as the workers wrote it)")
	f.StringSliceVar(&signals, "signal", nil, "signals to replay: metrics, logs, traces (default: the sink's)")
	f.BoolVar(&dryRun, "dry-run", false, "run the rules, write nothing, and report what they did")
	f.BoolVar(&resume, "resume", false, "continue from the checkpoint of an interrupted replay")
	f.Float64Var(&rateItems, "rate", 0, "at most this many items per second (0: no limit)")
	f.StringVar(&rateBytes, "rate-bytes", "", "at most this many bytes read from the bus per second, e.g. 20MiB (default: no limit)")
	f.StringVar(&checkpoint, "checkpoint", "", "checkpoint file (default <bus.data_dir>/replay/<sink>.json)")
	f.StringVarP(&output, "output", "o", "table", "report format: table or json")
	f.DurationVar(&logEvery, "progress-interval", 10*time.Second, "when stderr is not a terminal, log the progress this often")
	return cmd
}

// parseWhen reads an RFC 3339 time or a duration relative to now ("-6h";
// "now").
func parseWhen(s string, now time.Time) (time.Time, error) {
	switch {
	case s == "":
		return time.Time{}, nil
	case s == "now":
		return now, nil
	case strings.HasPrefix(s, "-"):
		d, err := time.ParseDuration(s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration before now (-6h): %w", s, err)
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-12-05T00:00:00Z) nor a duration before now (-6h)", s)
	}
	return t, nil
}

// parseOffsets reads "N" (every partition) or "p:N,p:N".
func parseOffsets(s string) (stream.Positions, error) {
	if s == "" {
		return nil, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return nil, fmt.Errorf("offset %d is negative", n)
		}
		return stream.Positions{stream.AllPartitions: n}, nil
	}
	pos := stream.Positions{}
	for _, part := range strings.Split(s, ",") {
		p, o, ok := strings.Cut(strings.TrimSpace(part), ":")
		pn, err1 := strconv.ParseInt(p, 10, 32)
		on, err2 := strconv.ParseInt(o, 10, 64)
		if !ok || err1 != nil || err2 != nil || pn < 0 || on < 0 {
			return nil, fmt.Errorf("%q is not partition:offset (e.g. 0:1200,1:980)", part)
		}
		pos[int32(pn)] = on
	}
	return pos, nil
}

// progress shows a replay's progress: a bar on a terminal, else a log
// line every interval.
type progress struct {
	bar   *progressbar.ProgressBar
	log   *slog.Logger
	every time.Duration
	start time.Time
	next  time.Time
	last  app.ReplayProgress
}

func newProgress(w *os.File, log *slog.Logger, every time.Duration) *progress {
	p := &progress{log: log, every: every, start: time.Now()}
	p.next = p.start.Add(every)
	if term.IsTerminal(int(w.Fd())) {
		p.bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("replay"),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionSetWidth(30), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *progress) update(r app.ReplayProgress) {
	p.last = r
	secs := max(time.Since(p.start).Seconds(), 0.001)
	desc := fmt.Sprintf("%d items, %s, %.0f items/s", r.Items, byteSize(r.Bytes), float64(r.Items)/secs)
	if p.bar != nil {
		if p.bar.GetMax64() != r.Total && r.Total > 0 {
			p.bar.ChangeMax64(r.Total)
		}
		p.bar.Describe(desc)
		p.bar.Set64(r.Done)
		return
	}
	if now := time.Now(); now.After(p.next) {
		p.next = now.Add(p.every)
		pct := 100.0
		if r.Total > 0 {
			pct = 100 * float64(r.Done) / float64(r.Total)
		}
		eta := "unknown"
		if r.Done > 0 && r.Total > r.Done {
			eta = (time.Duration(float64(time.Since(p.start)) * float64(r.Total-r.Done) / float64(r.Done))).Round(time.Second).String()
		}
		p.log.Info("replay progress", "items", r.Items, "bytes", r.Bytes, "records", r.Records, "percent", fmt.Sprintf("%.1f", pct),
			"items_per_second", int64(float64(r.Items)/secs), "eta", eta)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// writeReplayReport prints the report as tables.
func writeReplayReport(w io.Writer, r *app.ReplayReport) {
	what := "replayed into sink " + r.Sink
	if r.DryRun {
		what = "dry run (nothing written)"
	}
	state := "complete"
	if !r.Complete {
		state = "stopped before the end; resume with --resume (checkpoint " + r.Checkpoint + ")"
	}
	fmt.Fprintf(w, "%s, topic %s, %d records, %d items: %s\n", what, r.Topic, r.Progress.Records, r.Progress.Items, state)
	for _, warn := range r.Warnings {
		fmt.Fprintln(w, "warning:", warn)
	}
	if r.DeadLetters > 0 || r.Rejected > 0 {
		fmt.Fprintf(w, "raw records not decodable: %d; records the sink rejected: %d\n", r.DeadLetters, r.Rejected)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSIGNAL\tRECORDS\tITEMS IN\tITEMS OUT")
	for _, s := range r.Signals {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", s.Signal, s.Records, s.ItemsIn, s.ItemsOut)
	}
	if len(r.RuleHits) > 0 {
		fmt.Fprintf(tw, "\nRULE\tSIGNAL\tMATCHED\tDROPPED\tCHANGED\tMERGED\tERRORS\tFILE\n")
		for _, h := range r.RuleHits {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", h.Rule, h.Signal, h.Matched, h.Dropped, h.Changed, h.Merged, h.Errors, h.File)
		}
	}
	if len(r.Series) > 0 {
		fmt.Fprintf(tw, "\nTENANT\tMETRIC\tSERIES BEFORE\tSERIES AFTER\n")
		for _, s := range r.Series {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", s.Tenant, s.Metric, s.Before, s.After)
		}
	}
	tw.Flush()
}
