package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/app"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/rules/columnar"
	"github.com/sluice-dev/sluice/stream"
)

// tapOptions are the flags of `sluice tap`.
type tapOptions struct {
	filter        string
	sample        float64
	seed          uint64
	limit         int
	from          string
	fromBeginning bool
	idle          time.Duration
}

// newTapCmd is `sluice tap`: the live records of a topic as JSON items.
// cfgFile is the root's --config.
func newTapCmd(cfgFile *string) *cobra.Command {
	var o tapOptions
	cmd := &cobra.Command{
		Use:   "tap TOPIC",
		Short: "Print the records of a topic as JSON, one data point, log record or span per line",
		Long: `tap reads a topic of the pipeline and prints its items as JSON, one object per
line: each data point with its metric, resource and attributes, each log
record, each span, with the record's topic, partition, offset and headers.
It reads raw OTLP records, processed (Arrow) records, the dead-letter topic
and the aggregation topic. A record it cannot decode (a truncated dead
letter, garbage) is one object with its size and the error.

TOPIC is a topic's full name (sluice.raw.metrics) or its name without the
prefix: raw.metrics, raw.logs, raw.traces, processed.metrics,
processed.logs, processed.traces, dlq, agg.metrics.

tap never disturbs the pipeline: it joins no consumer group, commits
nothing and creates no topic (Kafka: it reads the partitions directly;
NATS: through an ephemeral ordered consumer, deleted when tap ends). On the
embedded bus it reaches the running sluice at bus.embedded.listen; with no
listener it can only open the data directory while no sluice runs on it.

--filter is a condition in the rule language (rules/README.md,
"Expressions"), evaluated per item as a rule's when: only the items it
matches are printed (an item it fails on is not). On the dead-letter topic,
which holds records of every signal, it applies to the signals whose names
it uses; the items of the others are left out.`,
		Example: `  sluice tap raw.metrics -c sluice.yaml
  sluice tap processed.logs --filter 'severity_number >= 17 && resource["service.name"] == "checkout"'
  sluice tap processed.traces --filter 'duration_ms > 500' --limit 20
  sluice tap raw.metrics --sample 0.01 --from 10m
  sluice tap dlq --from-beginning --until-idle 2s | jq -r .headers["sluice-error"]`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := app.Load(*cfgFile)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runTap(ctx, cfg, args[0], o, cmd.OutOrStdout(), toolLogger(cmd))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.filter, "filter", "", "print only the items matching this rule-language condition")
	f.Float64Var(&o.sample, "sample", 1, "print this fraction of the items (0 to 1), chosen at random")
	f.Uint64Var(&o.seed, "seed", 0, "seed of --sample's choice: the same seed keeps the same items (0: a random seed)")
	f.IntVar(&o.limit, "limit", 0, "stop after printing this many items (0: no limit)")
	f.StringVar(&o.from, "from", "", "start at this time: RFC 3339 (2026-01-02T15:04:05Z) or a duration ago (10m)")
	f.BoolVar(&o.fromBeginning, "from-beginning", false, "start at the oldest record kept (default: only records written from now on)")
	f.DurationVar(&o.idle, "until-idle", 0, "stop once no record came for this long (0: run until interrupted or --limit)")
	cmd.MarkFlagsMutuallyExclusive("from", "from-beginning")
	return cmd
}

// toolLogger is the log of an operator command: warnings and errors, on
// the command's stderr.
func toolLogger(cmd *cobra.Command) *slog.Logger {
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// tapTopic finds arg among the pipeline's topics (app.TopicSpecs), by its
// full name or without the prefix, and returns its name and signal
// (anySignal for the dead-letter topic, whose records say theirs).
func tapTopic(cfg *config.Config, arg string) (string, otlpwire.Signal, error) {
	t := stream.Topics{Prefix: cfg.Bus.TopicPrefix}
	var names []string
	for _, s := range app.TopicSpecs(cfg) {
		short := strings.TrimPrefix(s.Name, t.Prefix+".")
		names = append(names, short)
		if arg != s.Name && arg != short {
			continue
		}
		for _, sig := range otlpwire.Signals {
			if s.Name == t.Raw(sig) || s.Name == t.Processed(sig) {
				return s.Name, sig, nil
			}
		}
		if s.Name == t.Aggregate() {
			return s.Name, otlpwire.Metrics, nil
		}
		return s.Name, anySignal, nil
	}
	return "", 0, fmt.Errorf("unknown topic %q: want one of %s, with or without the prefix %q", arg, strings.Join(names, ", "), t.Prefix+".")
}

// anySignal stands for the signal of a topic that holds records of every
// signal.
const anySignal = otlpwire.Signal(255)

// tapStart reads --from and --from-beginning.
func tapStart(o tapOptions, now time.Time) (stream.Start, error) {
	switch {
	case o.fromBeginning:
		return stream.Start{Kind: stream.StartEarliest}, nil
	case o.from == "":
		return stream.Start{Kind: stream.StartLatest}, nil
	}
	if d, err := time.ParseDuration(o.from); err == nil {
		if d < 0 {
			return stream.Start{}, fmt.Errorf("--from %s: a duration ago must not be negative", o.from)
		}
		return stream.Start{Kind: stream.StartAtTime, Time: now.Add(-d)}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, o.from)
	if err != nil {
		return stream.Start{}, fmt.Errorf("--from %q: want a time in RFC 3339 (2026-01-02T15:04:05Z) or a duration ago (10m)", o.from)
	}
	return stream.Start{Kind: stream.StartAtTime, Time: t}, nil
}

// tapFilters compiles --filter for sig, or for every signal when sig is
// anySignal (keeping the signals it compiles for; an error if none).
func tapFilters(d *tapDecoder, cond string, sig otlpwire.Signal) error {
	if cond == "" {
		return nil
	}
	d.filtering = true
	sigs := []otlpwire.Signal{sig}
	if !sig.Valid() {
		sigs = otlpwire.Signals[:]
	}
	var errs []error
	for _, s := range sigs {
		set, err := rules.Filter(s, "--filter", cond)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s, err))
			continue
		}
		d.filters[s] = columnar.New(set, columnar.Options{Allocator: d.mem})
	}
	if len(errs) == len(sigs) {
		if len(errs) == 1 {
			return errors.Unwrap(errs[0])
		}
		return fmt.Errorf("the filter fits no signal:\n%w", errors.Join(errs...))
	}
	return nil
}

func runTap(ctx context.Context, cfg *config.Config, topicArg string, o tapOptions, out io.Writer, log *slog.Logger) error {
	topic, sig, err := tapTopic(cfg, topicArg)
	if err != nil {
		return err
	}
	if o.sample < 0 || o.sample > 1 {
		return fmt.Errorf("--sample must be from 0 to 1, not %g", o.sample)
	}
	if o.limit < 0 {
		return fmt.Errorf("--limit must be 0 (none) or more, not %d", o.limit)
	}
	start, err := tapStart(o, time.Now())
	if err != nil {
		return err
	}
	d := newTapDecoder(sig)
	if err := tapFilters(d, o.filter, sig); err != nil {
		return err
	}
	sample := newSampler(o.sample, o.seed)

	bus, err := app.OpenToolBus(cfg, log, false)
	if err != nil {
		return err
	}
	defer bus.Close()
	tap, err := bus.Tap(ctx, topic, start)
	if err != nil {
		return err
	}
	defer tap.Close()

	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	printed := 0
	errDone := errors.New("limit reached")
	emit := func(v any) error {
		if !sample.keep(v) {
			return nil
		}
		if err := enc.Encode(v); err != nil {
			return err
		}
		if printed++; o.limit > 0 && printed >= o.limit {
			return errDone
		}
		return nil
	}
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if o.idle > 0 {
			pctx, cancel = context.WithTimeout(ctx, o.idle)
		}
		recs, err := tap.Poll(pctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil || o.idle > 0 && errors.Is(err, context.DeadlineExceeded) {
				return nil // interrupted, or idle
			}
			return err
		}
		for _, r := range recs {
			if err := d.items(r, emit); err != nil {
				if errors.Is(err, errDone) {
					return nil
				}
				return err
			}
		}
	}
}

// sampler keeps a fraction of the items. Whether an item is kept is a hash
// of the seed and the item's place (topic, partition, offset, position in
// its record), so that a seed keeps the same items whatever order the
// partitions' records arrive in.
type sampler struct {
	rate float64
	seed uint64
	buf  []byte
	// the record of the last item, and its position in it
	topic     string
	partition int32
	offset    int64
	pos       uint32
}

func newSampler(rate float64, seed uint64) *sampler {
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &sampler{rate: rate, seed: seed, offset: -1}
}

func (s *sampler) keep(v any) bool {
	if s.rate >= 1 {
		return true
	}
	var (
		topic     string
		partition int32
		offset    int64
	)
	switch v := v.(type) {
	case *tapItem:
		topic, partition, offset = v.Topic, v.Partition, v.Offset
	case *tapRecord:
		topic, partition, offset = v.Topic, v.Partition, v.Offset
	}
	b := binary.LittleEndian.AppendUint64(s.buf[:0], s.seed)
	b = binary.LittleEndian.AppendUint32(b, uint32(partition))
	b = binary.LittleEndian.AppendUint64(b, uint64(offset))
	b = binary.LittleEndian.AppendUint32(b, s.next(topic, partition, offset))
	b = append(b, topic...)
	s.buf = b
	return float64(xxhash.Sum64(b)>>11)/(1<<53) < s.rate
}

// next numbers the items of one record: 0, 1, ... while they come from the
// same record.
func (s *sampler) next(topic string, partition int32, offset int64) uint32 {
	if s.topic == topic && s.partition == partition && s.offset == offset {
		s.pos++
		return s.pos
	}
	s.topic, s.partition, s.offset, s.pos = topic, partition, offset, 0
	return 0
}
