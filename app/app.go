// Package app assembles sluice's roles from a config: the bus, the OTLP
// ingest servers, the worker, the sink runners and the admin server, and
// runs them until told to stop. `sluice run` runs every role in one process;
// `sluice ingest`, `sluice worker` and `sluice sink` run one each.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sluice-dev/sluice/app/admin"
	"github.com/sluice-dev/sluice/app/status"
	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/sinks"
	_ "github.com/sluice-dev/sluice/sinks/file" // the sinks, registered by type
	_ "github.com/sluice-dev/sluice/sinks/kafkasink"
	_ "github.com/sluice-dev/sluice/sinks/loki"
	_ "github.com/sluice-dev/sluice/sinks/otlp"
	_ "github.com/sluice-dev/sluice/sinks/promrw"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/cardinality"
	"github.com/sluice-dev/sluice/stream/stage"
	"github.com/sluice-dev/sluice/stream/worker"
)

// Version is the sluice version, set at build time with
// -ldflags "-X github.com/sluice-dev/sluice/app.Version=v1.2.3".
var Version = ""

// VersionString is Version, or the module version and VCS revision Go
// recorded in the binary.
func VersionString() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}

// Roles selects what a process runs.
type Roles struct {
	Ingest bool
	Worker bool
	// Sinks runs the sinks named here, or every configured sink when
	// AllSinks is set.
	Sinks    []string
	AllSinks bool
}

// All is every role: `sluice run`.
var All = Roles{Ingest: true, Worker: true, AllSinks: true}

// ShutdownTimeout bounds each step of a graceful shutdown.
const ShutdownTimeout = 30 * time.Second

// Load reads and validates the config, including every sink's own keys.
func Load(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if err := sinks.Check(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// NewLogger builds the process logger from the log section.
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Process is a running sluice process.
type Process struct {
	cfg   *config.Config
	log   *slog.Logger
	reg   *prometheus.Registry
	admin *admin.Server
	bus   stream.Bus
	srv   *ingest.Server

	rules *ruleSet
	hup   chan os.Signal // SIGHUP: reload the rules
	// phase is what /readyz's "process" check reports: starting until
	// Start has brought every role up, then running, then stopping from
	// the moment Stop begins (the load balancer takes the process out
	// while it drains).
	phase atomic.Int32

	ingestHup    chan struct{} // SIGHUP: reload the tokens and TLS files
	cancelReload context.CancelFunc
	reloadWG     sync.WaitGroup

	// deadLetters keeps the last dead letters the stages wrote, for the
	// status page.
	deadLetters  *status.DeadLetters
	cancelStatus context.CancelFunc
	statusWG     sync.WaitGroup

	cancelWorker, cancelSinks context.CancelFunc
	workerWG, sinksWG         sync.WaitGroup
	failed                    chan error
}

// Start brings up the roles: admin server, bus, sinks, worker, then the
// ingest servers, so that nothing is accepted before it can be handled.
func Start(ctx context.Context, cfg *config.Config, roles Roles, log *slog.Logger) (_ *Process, err error) {
	started := time.Now()
	p := &Process{cfg: cfg, log: log, reg: prometheus.NewRegistry(), failed: make(chan error, 1), hup: make(chan os.Signal, 1), ingestHup: make(chan struct{}, 1),
		deadLetters: status.NewDeadLetters(0)}
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_arrow_live_bytes",
			Help: "Bytes of Arrow buffers held by the batches of workers and sinks (internal/arrowpool)."},
			func() float64 { return float64(arrowpool.Default.Live()) }))
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_build_info", Help: "Always 1; the labels tell the version.",
		ConstLabels: prometheus.Labels{"version": VersionString()}})
	build.Set(1)
	p.reg.MustRegister(build)
	defer func() {
		if err != nil {
			p.Stop()
		}
	}()

	// The soft memory limit is the process's (config.MemoryLimit: by
	// default by its roles); GOMEMLIMIT in the environment wins.
	var limit *memLimit
	if l := cfg.MemoryLimit.Limit(roles.Ingest, roles.Worker, roles.AllSinks || len(roles.Sinks) > 0); l > 0 && os.Getenv("GOMEMLIMIT") == "" {
		limit = newMemLimit(l, p.reg, log)
		limit.update()
		log.Info("soft memory limit set", "bytes", l)
	}
	if cfg.Admin.Listen != "" {
		p.admin = admin.New(p.reg, log, admin.Options{Pprof: cfg.Admin.Pprof})
		// Not ready before the roles are up: the bus and the OTLP
		// listeners add their own checks once they exist.
		p.admin.AddCheck("process", p.phaseCheck)
		if err := p.admin.Start(cfg.Admin.Listen); err != nil {
			return nil, err
		}
		log.Info("admin server listening", "addr", p.admin.Addr())
	}
	if p.bus, err = OpenBus(ctx, cfg, log, p.reg); err != nil {
		return nil, err
	}
	if p.admin != nil {
		p.admin.AddCheck("bus", p.bus.Ping)
	}
	topics := Topics(cfg)
	if roles.Worker || roles.Ingest {
		if err := checkRawTopics(cfg, p.bus); err != nil {
			return nil, err
		}
	}
	stageMetrics := stage.NewMetrics(p.reg)
	var (
		sinkStages   []status.Stage // what the status page shows, in the order data flows
		workerStages []status.Stage
		tracker      *cardinality.Tracker
	)

	var sinkCtx, workerCtx context.Context
	sinkCtx, p.cancelSinks = context.WithCancel(context.WithoutCancel(ctx))
	workerCtx, p.cancelWorker = context.WithCancel(context.WithoutCancel(ctx))
	for i := range cfg.Sinks {
		entry := &cfg.Sinks[i]
		if !roles.AllSinks && !slices.Contains(roles.Sinks, entry.Name) {
			continue
		}
		s, err := sinks.Build(cfg, entry, sinks.Env{Logger: log, Registerer: p.reg})
		if err != nil {
			return nil, err
		}
		r, err := sinks.NewRunner(p.bus, entry, s, sinks.RunnerConfig{Topics: topics, Logger: log, Metrics: stageMetrics, Registerer: p.reg,
			OnDeadLetters: p.deadLetters.Hook})
		if err != nil {
			s.Close()
			return nil, err
		}
		p.run(&p.sinksWG, "sink "+entry.Name, func() error { return r.Run(sinkCtx) })
		log.Info("sink started", "sink", entry.Name, "type", entry.Type, "signals", entry.Signals)
		sinkStages = append(sinkStages, status.Stage{Name: "sink/" + entry.Name, Kind: status.KindSink, Group: r.Group(), Reads: r.Topics(),
			Writes: []string{entry.Type + " destination", topics.DLQ()}, Detail: entry.Type + " " + strings.Join(entry.Signals, ", ")})
	}
	for _, name := range roles.Sinks {
		if !slices.ContainsFunc(cfg.Sinks, func(s config.Sink) bool { return s.Name == name }) {
			return nil, fmt.Errorf("no sink named %q in %s", name, cfg.File())
		}
	}
	if roles.Worker {
		rs, err := newRuleSet(cfg.Rules.Dir, log, p.reg)
		if err != nil {
			return nil, err
		}
		wcfg := worker.Config{Topics: topics, Group: cfg.Worker.Group, Logger: log, Metrics: stageMetrics, Registerer: p.reg,
			ExactlyOnce: cfg.Worker.ExactlyOnce, TransactionalID: cfg.Worker.TransactionalID, MaxRecordBytes: int(cfg.Bus.MaxRecordBytes),
			DeadLetterMaxBytes: int(cfg.DeadLetterMaxBytes()), DeadLetterTopic: deadLetterSpec(cfg),
			MaxPollRecords: cfg.Worker.MaxPollRecords, MaxPollBytes: int(cfg.Worker.MaxPollBytes), MaxBatchItems: cfg.Worker.MaxBatchItems,
			OnDeadLetters: p.deadLetters.Hook,
			TenantHeader:  cfg.Worker.TenantHeader, DefaultTenant: cfg.Worker.DefaultTenant, RawEncoding: cfg.Worker.RawEncoding,
			LocalMerge: cfg.Worker.LocalMerge}
		if wcfg.ExactlyOnce && wcfg.TransactionalID == "" {
			host, _ := os.Hostname()
			wcfg.TransactionalID = "sluice-worker-" + host
		}
		cardHandler := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "cardinality tracking is off in this worker (worker.cardinality.enabled: false)", http.StatusNotFound)
		}))
		if c := cfg.Worker.Cardinality; c.Enabled {
			wcfg.Cardinality = cardinality.New(cardinality.Config{MaxMetrics: c.MaxMetrics, MaxLabels: c.MaxLabels, Window: c.Window, MaxTenants: c.MaxTenants})
			cardHandler = wcfg.Cardinality.Handler()
			tracker = wcfg.Cardinality
		}
		if p.admin != nil {
			p.admin.Handle("GET /api/v1/cardinality", cardHandler)
		}
		w, err := worker.New(p.bus, wcfg, rs.Transform())
		if err != nil {
			return nil, err
		}
		rs.apply = w.SetTransform
		p.rules = rs
		p.run(&p.workerWG, "worker", func() error { return w.Run(workerCtx) })
		p.run(&p.workerWG, "rules watcher", func() error {
			rs.Watch(workerCtx, cfg.Rules.ReloadInterval, p.hup)
			return nil
		})
		log.Info("worker started", "group", cfg.Worker.Group)
		ws := status.Stage{Name: "worker", Kind: status.KindWorker, Group: cfg.Worker.Group, Writes: []string{}}
		for _, sig := range otlpwire.Signals {
			ws.Reads = append(ws.Reads, topics.Raw(sig))
			ws.Writes = append(ws.Writes, topics.Processed(sig))
		}
		ws.Writes = append(ws.Writes, topics.Aggregate(), topics.DLQ())
		workerStages = append(workerStages, ws)
		var agg *worker.Aggregator
		if cfg.Worker.Aggregator {
			as, a, err := p.startAggregator(ctx, workerCtx, topics, stageMetrics)
			if err != nil {
				return nil, err
			}
			workerStages = append(workerStages, as)
			agg = a
		}
		if limit != nil && cfg.MemoryLimit.Auto && (agg != nil || cfg.Worker.LocalMerge) {
			limit.held = func() int64 {
				n := w.StateBytes() // merged in the raw partitions
				if agg != nil {
					n += agg.StateBytes()
				}
				return n
			}
			p.run(&p.workerWG, "memory limit", func() error {
				limit.follow(workerCtx, 5*time.Second)
				return nil
			})
		}
	}
	if roles.Ingest {
		if err := p.startIngest(topics); err != nil {
			return nil, err
		}
		if p.admin != nil {
			p.admin.AddCheck("ingest", func(context.Context) error { return p.srv.Ready() })
		}
	}
	if p.admin != nil {
		pl := status.Pipeline{Version: VersionString(), Started: started, Bus: cfg.Bus.Kind, TopicPrefix: cfg.Bus.TopicPrefix, DeadLetterTopic: topics.DLQ()}
		if roles.Ingest {
			var listen []string
			if a := p.GRPCAddr(); a != "" {
				listen = append(listen, "OTLP/gRPC "+a)
			}
			if a := p.HTTPAddr(); a != "" {
				listen = append(listen, "OTLP/HTTP "+a)
			}
			is := status.Stage{Name: "ingest", Kind: status.KindIngest, Detail: strings.Join(listen, ", ")}
			for _, sig := range otlpwire.Signals {
				is.Writes = append(is.Writes, topics.Raw(sig))
			}
			pl.Stages = append(pl.Stages, is)
		}
		pl.Stages = append(append(pl.Stages, workerStages...), sinkStages...)
		p.startStatus(pl, tracker)
	}
	p.phase.Store(phaseRunning)
	return p, nil
}

// The phases of a Process (Process.phase).
const (
	phaseStarting = iota
	phaseRunning
	phaseStopping
)

// startStatus serves the status page (app/status) on the admin server and
// samples the registry for its rates until Stop.
func (p *Process) startStatus(pl status.Pipeline, tracker *cardinality.Tracker) {
	st := status.New(status.Options{Gatherer: p.reg, Pipeline: pl, Failing: p.admin.Failing, Cardinality: tracker,
		DeadLetters: p.deadLetters, Logger: p.log})
	page := st.Page()
	p.admin.Handle("GET /{$}", page)
	p.admin.Handle("GET /status", page)
	p.admin.Handle("GET /api/v1/status", st.API())
	var ctx context.Context
	ctx, p.cancelStatus = context.WithCancel(context.Background())
	p.statusWG.Go(func() { st.Run(ctx) })
}

func (p *Process) phaseCheck(context.Context) error {
	switch p.phase.Load() {
	case phaseStarting:
		return errors.New("starting")
	case phaseStopping:
		return errors.New("stopping")
	}
	return nil
}

func (p *Process) startIngest(topics stream.Topics) error {
	c := p.cfg.Ingest
	keys := map[otlpwire.Signal]otlpwire.KeyMode{}
	for name, mode := range c.PartitionKey {
		sig, err := otlpwire.ParseSignal(name)
		if err != nil {
			return p.cfg.Errorf("ingest.partition_key."+name, "%v", err)
		}
		if keys[sig], err = ingest.ParseKeyMode(mode); err != nil {
			return p.cfg.Errorf("ingest.partition_key."+name, "%v", err)
		}
	}
	icfg := ingest.Config{Topics: topics, Key: keys, MaxRecordBytes: int(p.cfg.Bus.MaxRecordBytes), MaxRequestBytes: int(c.MaxRequestBytes),
		MaxInflightBytes: int64(c.MaxInflightBytes), RetryAfter: c.RetryAfter, ProduceTimeout: p.cfg.Bus.ProduceTimeout,
		DefaultTenant: c.DefaultTenant, TrustTenantHeader: c.TrustTenantHeader, Logger: p.log, Registerer: p.reg}
	toks, tlsFiles, err := loadIngestFiles(p.cfg)
	if err != nil {
		return err
	}
	icfg.Tokens = toks
	ing, err := ingest.New(icfg, p.bus)
	if err != nil {
		return err
	}
	scfg := ingest.ServerConfig{GRPCListen: c.GRPCListen, HTTPListen: c.HTTPListen, Logger: p.log,
		GRPC: ingest.GRPCLimits{MaxConcurrentStreams: c.GRPC.MaxConcurrentStreams, KeepaliveMinTime: c.GRPC.KeepaliveMinTime,
			MaxConnectionIdle: c.GRPC.MaxConnectionIdle, MaxConnectionAge: c.GRPC.MaxConnectionAge, MaxConnectionAgeGrace: c.GRPC.MaxConnectionAgeGrace},
		HTTP: ingest.HTTPTimeouts{ReadHeaderTimeout: c.HTTP.ReadHeaderTimeout, ReadTimeout: c.HTTP.ReadTimeout, WriteTimeout: c.HTTP.WriteTimeout, IdleTimeout: c.HTTP.IdleTimeout}}
	if tlsFiles != nil {
		scfg.TLS = tlsFiles.Config()
	}
	p.srv = ingest.NewServer(ing, scfg)
	if err := p.srv.Start(); err != nil {
		return err
	}
	// The tokens and certificate reload on SIGHUP and when their files change.
	if c.TokensFile != "" || tlsFiles != nil {
		r := ingest.NewReloader(ing, c.TokensFile, tlsFiles, p.log)
		r.WarnLegacy(icfg.Tokens)
		var ctx context.Context
		ctx, p.cancelReload = context.WithCancel(context.Background())
		p.run(&p.reloadWG, "ingest reloader", func() error { r.Run(ctx, c.ReloadInterval, p.ingestHup); return nil })
	}
	p.log.Info("OTLP ingest listening", "grpc", p.srv.GRPCAddr(), "http", p.srv.HTTPAddr())
	return nil
}

// loadIngestFiles reads the files the ingest section names, as the
// ingester uses them: the tokens file (nil without one) and the TLS
// certificate, key and CA (nil without ingest.tls). Every problem is
// reported, each at its key in the config file and with the line of the
// tokens file where it has one; the tokens themselves are never shown.
func loadIngestFiles(cfg *config.Config) (*ingest.Tokens, *ingest.TLSFiles, error) {
	c := cfg.Ingest
	var toks *ingest.Tokens
	var tlsFiles *ingest.TLSFiles
	var errs []error
	if c.TokensFile != "" {
		var err error
		if toks, err = ingest.LoadTokens(c.TokensFile); err != nil {
			errs = append(errs, cfg.Errorf("ingest.tokens_file", "%v", err))
		}
	}
	if t := c.TLS; t != nil {
		var err error
		if tlsFiles, err = ingest.LoadTLS(t.CertFile, t.KeyFile, t.CAFile); err != nil {
			errs = append(errs, cfg.Errorf("ingest.tls", "%v", err))
		}
	}
	return toks, tlsFiles, errors.Join(errs...)
}

// CheckFiles loads the files cfg names that Load does not read, as the
// process would at start: the ingester's tokens file and TLS files, and the
// Kafka bus's TLS files and SASL password_file. It serves `sluice check`.
func CheckFiles(cfg *config.Config) error {
	_, _, err := loadIngestFiles(cfg)
	errs := []error{err}
	if k := cfg.Bus.Kafka; cfg.Bus.Kind == "kafka" {
		if _, err := k.TLS.ClientConfig(); err != nil {
			errs = append(errs, cfg.Errorf("bus.kafka.tls", "%v", err))
		}
		if k.SASL != nil {
			if _, err := k.SASL.Secret(); err != nil {
				errs = append(errs, cfg.Errorf("bus.kafka.sasl.password_file", "%v", err))
			}
		}
	}
	return errors.Join(errs...)
}

// run runs fn in the background; an error ends the process (Failed).
func (p *Process) run(wg *sync.WaitGroup, name string, fn func() error) {
	wg.Go(func() {
		if err := fn(); err != nil {
			p.log.Error("role stopped", "role", name, "err", err)
			select {
			case p.failed <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	})
}

// ReloadRules reloads the rules directory now, as SIGHUP does.
func (p *Process) ReloadRules() {
	select {
	case p.hup <- syscall.SIGHUP:
	default:
	}
}

// ReloadIngest reloads the tokens file and TLS files now, as SIGHUP does.
func (p *Process) ReloadIngest() {
	select {
	case p.ingestHup <- struct{}{}:
	default:
	}
}

// Failed delivers the first error of a role that stopped by itself.
func (p *Process) Failed() <-chan error { return p.failed }

// GRPCAddr, HTTPAddr and AdminAddr are the listening addresses (for ":0").
func (p *Process) GRPCAddr() string {
	if p.srv == nil {
		return ""
	}
	return p.srv.GRPCAddr()
}

func (p *Process) HTTPAddr() string {
	if p.srv == nil {
		return ""
	}
	return p.srv.HTTPAddr()
}

func (p *Process) AdminAddr() string {
	if p.admin == nil {
		return ""
	}
	return p.admin.Addr()
}

// Bus is the process's bus.
func (p *Process) Bus() stream.Bus { return p.bus }

// Stop shuts down gracefully, in the order data flows: the ingest servers
// stop accepting and drain in-flight requests and their acknowledgements;
// the worker finishes its batch and commits; the sinks finish theirs and
// commit; then the bus and the admin server close.
func (p *Process) Stop() error {
	p.phase.Store(phaseStopping)
	var errs []error
	if p.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		errs = append(errs, p.srv.Shutdown(ctx))
		cancel()
	}
	if p.cancelReload != nil {
		p.cancelReload()
		p.reloadWG.Wait()
	}
	if p.cancelWorker != nil {
		p.cancelWorker()
		p.workerWG.Wait()
	}
	if p.cancelSinks != nil {
		p.cancelSinks()
		p.sinksWG.Wait()
	}
	if p.bus != nil {
		errs = append(errs, p.bus.Close())
	}
	if p.cancelStatus != nil {
		p.cancelStatus()
		p.statusWG.Wait()
	}
	if p.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, p.admin.Shutdown(ctx))
		cancel()
	}
	p.log.Info("stopped")
	return errors.Join(errs...)
}

// Run starts the roles, waits until ctx is cancelled (a signal) or a role
// fails, and shuts down gracefully.
func Run(ctx context.Context, cfg *config.Config, roles Roles, log *slog.Logger) error {
	p, err := Start(ctx, cfg, roles, log)
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			p.ReloadRules()
			p.ReloadIngest()
			continue
		case <-ctx.Done():
			log.Info("shutting down")
			return p.Stop()
		case failed := <-p.Failed():
			return errors.Join(failed, p.Stop())
		}
	}
}
