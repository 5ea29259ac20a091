package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/loadgen"
)

// capacityStage runs the whole pipeline under load, as `sluice bench`
// does: `sluice ingest`, `sluice worker` (with o.capacityRules) and `sluice
// sink` (remote write into Prometheus) take the realistic metrics load in a
// closed-loop ramp
// of o.steps connections, and the capacity report, from what the load
// measured and from each process's own metrics, goes to o.report.
func capacityStage(ctx context.Context, o options, prefix string) error {
	prom, promAddr, err := startPrometheus(o)
	if err != nil {
		return err
	}
	defer prom.stop()
	o.rules = o.capacityRules
	cfgs, err := roleConfigs(o, prefix, promAddr, "ingest", "worker", "sink")
	if err != nil {
		return err
	}
	var stages []loadgen.Stage
	for _, role := range []string{"ingest", "worker", "sink"} {
		p, err := startProc("sluice "+role, filepath.Join(o.work, prefix+"-"+role+".log"), o.sluice, role, "-c", cfgs[role].path)
		if err != nil {
			return err
		}
		defer p.stop()
		if err := waitHTTP(p, "http://"+cfgs[role].admin+"/readyz", time.Minute); err != nil {
			return err
		}
		stages = append(stages, loadgen.Stage{Role: role, URL: "http://" + cfgs[role].admin})
		if o.profile > 0 {
			go profile(cfgs[role].admin, filepath.Join(o.work, "capacity-"+role), o.profile)
		}
	}
	grpcAddr := cfgs["ingest"].grpc
	// Times from half an hour ago: at a few hundred thousand points a
	// second the load's time runs ahead of the clock (one step of 10,000
	// points is a second of it), and Prometheus takes only the recent past.
	load, err := loadgen.NewK8sMetrics(&loadgen.K8sMetrics{Pods: 100, Series: 100, PerRequest: 1000, Seed: 1, Start: time.Now().Add(-30 * time.Minute), Step: o.step})
	if err != nil {
		return err
	}
	rate, unit, err := loadgen.ParseTarget(o.target)
	if err != nil {
		return err
	}
	var steps []int
	for f := range strings.SplitSeq(o.steps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-steps %q: want connections such as 4,16", o.steps)
		}
		steps = append(steps, n)
	}
	rep, err := loadgen.Bench(ctx, loadgen.BenchOptions{
		Options: loadgen.Options{Profile: load, Target: loadgen.Target{Protocol: "grpc", Addr: grpcAddr}, Duration: o.stepTime},
		Steps:   steps, Stages: stages, Settle: 3 * time.Minute,
		TargetRate: rate, TargetUnit: unit, CoresPerReplica: o.coresPerReplica,
		Log: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "e2eload: %s: "+format+"\n", append([]any{prefix}, args...)...)
		},
	})
	if err != nil {
		return err
	}
	if err := rep.Write(o.report); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "e2eload: %s: capacity report in %s\n", prefix, o.report)
	return nil
}
