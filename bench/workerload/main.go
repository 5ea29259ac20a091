// Command workerload measures a sluice worker process draining a backlog on
// a real bus. It writes items of a benchmark corpus (internal/otlptest) to
// the raw topic through the ingester's own code, so the records are those
// `sluice ingest` would write; then it starts `sluice worker` on the same
// config, waits until the worker has taken every item in and written its
// processed records, and reports items per second and the worker's
// CPU-seconds per million items, read from its admin endpoint.
//
//	go run ./bench/workerload -sluice bin/sluice -c worker.yaml -corpus logs-varied -items 2000000
//
// bench/worker.sh runs it on a real Kafka broker.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/app"
	"github.com/sluice-dev/sluice/bench/benchutil"
	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/stream"
)

func main() {
	bin := flag.String("sluice", "bin/sluice", "the sluice binary")
	cfgPath := flag.String("c", "sluice.yaml", "config of the bus, the rules and the worker's admin address")
	corpus := flag.String("corpus", "logs-varied", "corpus: metrics, logs-varied, logs or traces")
	items := flag.Int("items", 5_000_000, "items to write and process")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	flag.Parse()
	if err := run(*bin, *cfgPath, *corpus, *items, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "workerload:", err)
		os.Exit(1)
	}
}

func run(bin, cfgPath, corpus string, items int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	i := slices.IndexFunc(otlptest.Corpora(), func(c otlptest.Corpus) bool { return c.Name == corpus })
	if i < 0 {
		return fmt.Errorf("no corpus %q", corpus)
	}
	c := otlptest.Corpora()[i]
	cfg, err := app.Load(cfgPath)
	if err != nil {
		return err
	}
	admin := cfg.Admin.Listen

	// The backlog, written as the ingester writes it.
	bus, err := app.OpenBus(ctx, cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		return err
	}
	ing, err := ingest.New(ingest.Config{Topics: stream.Topics{Prefix: cfg.Bus.TopicPrefix}, MaxRecordBytes: int(cfg.Bus.MaxRecordBytes),
		MaxRequestBytes: len(c.Body) + 1, MaxInflightBytes: 2 * int64(len(c.Body)), ProduceTimeout: time.Minute}, bus)
	if err != nil {
		return err
	}
	requests := (items + c.Items - 1) / c.Items
	start := time.Now()
	var records int
	for range requests {
		res, err := ing.Export(ctx, c.Signal, "", c.Body)
		if err != nil {
			return fmt.Errorf("writing the backlog: %w", err)
		}
		records += res.Records
	}
	if err := bus.Close(); err != nil {
		return err
	}
	total := requests * c.Items
	fmt.Printf("backlog: %d %s items (%s corpus) in %d raw records, %.1f MB of OTLP, written in %v\n",
		total, c.Signal, c.Name, records, float64(requests*len(c.Body))/1e6, time.Since(start).Round(time.Millisecond))

	// The worker drains it.
	cmd := exec.CommandContext(ctx, bin, "worker", "-c", cfgPath)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	// From the moment its admin endpoint answers (start-up done) until
	// every item is through the worker stage (not the aggregator's, which
	// the process runs too): items of raw records whose processed records
	// the bus acknowledged and whose positions are committed. The CPU
	// includes the aggregator's share.
	var up time.Time
	var cpu0 float64
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("the worker did not finish: %w", err)
		}
		done, _, err := benchutil.MetricSum(admin, `sluice_stage_items_total{stage="worker"}`)
		if err != nil {
			time.Sleep(5 * time.Millisecond)
			continue // not up yet
		}
		if up.IsZero() {
			up = time.Now()
			if cpu0, err = benchutil.CPUSeconds(admin); err != nil {
				return err
			}
		}
		if done >= float64(total) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(up)
	cpu1, err := benchutil.CPUSeconds(admin)
	if err != nil {
		return err
	}
	cpu := cpu1 - cpu0
	out, _, _ := benchutil.MetricSum(admin, "sluice_worker_items_out_total")
	bytesOut, _, _ := benchutil.MetricSum(admin, "sluice_worker_bytes_out_total")
	// (The processed size is no size figure: the backlog repeats one
	// corpus, which zstd finds across the requests of a batch.)
	agg, _, _ := benchutil.MetricSum(admin, "sluice_worker_points_aggregated_total")
	fmt.Printf("worker: %d items in, %.0f out after the rules and %.0f to the aggregators (%.1f MB processed) in %v: %.0f items/s\n",
		total, out, agg, bytesOut/1e6, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
	fmt.Printf("worker CPU: %.2f s, %.3f CPU-seconds per million items, %.0f items/s per core\n",
		cpu, cpu/(float64(total)/1e6), float64(total)/cpu)
	return nil
}
