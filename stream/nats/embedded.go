package nats

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
)

// NewEmbedded starts a NATS server with JetStream inside the process, its
// files under cfg.DataDir, and returns a Bus connected to it in process.
// Without cfg.Listen the server opens no port at all. Bus.Close closes the
// connection, then shuts the server down.
//
// The server holds an exclusive lock on cfg.DataDir (a lock file) until
// Close: a second server on the same store would corrupt it, so
// NewEmbedded fails with ErrDataDirInUse while another process (a running
// sluice) has it open.
func NewEmbedded(cfg EmbeddedConfig, bus Config) (*Bus, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("nats: embedded: data dir is required")
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("nats: embedded: %w", err)
	}
	b, err := startEmbedded(cfg, bus)
	if err != nil {
		lock.Close()
		return nil, err
	}
	b.lock = lock
	return b, nil
}

func startEmbedded(cfg EmbeddedConfig, bus Config) (*Bus, error) {
	opts, err := cfg.serverOptions(bus)
	if err != nil {
		return nil, fmt.Errorf("nats: embedded: %w", err)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: embedded: %w", err)
	}
	log := bus.withDefaults().Logger
	// The marker of a clean shutdown tells a store rebuilt after a crash
	// of the process (normal) from one damaged while sluice was stopped.
	marker := filepath.Join(cfg.DataDir, cleanShutdownFile)
	_, err = os.Stat(marker)
	clean := err == nil
	if err := os.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("nats: embedded: %w", err)
	}
	// The groups' positions at the last stop, trusted only when it was
	// clean (checkPositions says why).
	var recorded *positions
	if clean {
		if recorded, err = readPositions(cfg.DataDir); err != nil {
			log.Warn("nats: embedded: cannot read the groups' positions recorded at the last stop; they are not checked", "err", err)
		}
	}
	start := &startupLog{}
	srv.SetLoggerV2(serverLogger{log: log.With("component", "nats-server"), start: start}, false, false, false)
	srv.Start()
	store := filepath.Join(cfg.DataDir, server.JetStreamStoreDir)
	fatal, repaired, unloaded := start.end()
	if fatal != "" || !srv.JetStreamEnabled() {
		// Start returns without JetStream when the store cannot be
		// opened; nothing would work, and restarting will not help.
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("nats: embedded: cannot open the JetStream store %s: %s; "+
			"make it a writable directory, or move it aside to start with an empty bus (losing the records in it)", store, fatal)
	}
	if len(unloaded) > 0 {
		// A consumer nats-server could not load (a garbled o.dat) cannot
		// be created again either while its directory is there: the
		// group's Consume would fail, retryable, forever. Say which
		// file, once, and let the operator choose (positions.go).
		srv.Shutdown()
		srv.WaitForShutdown()
		if clean {
			// No client ran: the stop stays clean and the record current,
			// so that the next start reports what the operator's repair
			// did to the group's position.
			if err := os.WriteFile(marker, nil, 0o644); err != nil {
				log.Warn("nats: embedded: cannot mark the clean shutdown", "err", err)
			}
		}
		return nil, unloadable(store, unloaded)
	}
	if len(repaired) > 0 {
		// nats-server repairs a damaged store by rebuilding its state
		// from what it can read, dropping the rest; it says so only in
		// warnings, and the same warnings follow a crash of the
		// process, which loses nothing.
		level, msg := slog.LevelWarn, "nats: embedded: nats-server rebuilt the JetStream store's state at start: normal after a crash of the process; "+
			"after damage to the files (disk, manual edits) records or group positions may be lost"
		for _, r := range repaired {
			if clean || strings.Contains(r, "checksum") || strings.Contains(r, "corrupt") || strings.Contains(r, "mismatch") {
				level, msg = slog.LevelError, "nats: embedded: the JetStream store was damaged and nats-server repaired it by dropping what it could not read: "+
					"records or group positions may be lost; keep a copy of the store to investigate"
				break
			}
		}
		log.Log(context.Background(), level, msg, "path", store, "problems", repaired)
	}
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("nats: embedded: server not ready after %s (see its log)", readyTimeout)
	}
	b, err := connect(bus, srv)
	if err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("nats: embedded: %w", err)
	}
	resets, err := checkPositions(log, srv, store, recorded)
	if err != nil {
		log.Warn("nats: embedded: cannot check the groups' positions against those recorded at the last stop", "err", err)
	}
	b.marker, b.positions, b.exactPositions = marker, cfg.DataDir, cfg.Listen == ""
	b.watched = make(chan struct{})
	go newStoreWatch(srv, opts, cfg.MaxPayload, log).run(b, b.watched)
	if reg := cfg.Registerer; reg != nil {
		c := storeCollector{srv: srv, resets: resets, bus: b}
		if err := reg.Register(c); err != nil {
			b.Close()
			return nil, fmt.Errorf("nats: embedded: registering the store metrics: %w", err)
		}
		b.unregister = func() { reg.Unregister(c) }
	}
	log.Info("nats: embedded server ready", "data_dir", cfg.DataDir, "listen", b.ClientURL())
	return b, nil
}

func (cfg EmbeddedConfig) serverOptions(bus Config) (*server.Options, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("data dir is required")
	}
	opts := &server.Options{
		ServerName:        "sluice-embedded",
		DontListen:        cfg.Listen == "",
		JetStream:         true,
		StoreDir:          cfg.DataDir,
		JetStreamMaxStore: cfg.MaxStore,
		MaxPayload:        cfg.MaxPayload,
		SyncAlways:        cfg.SyncAlways,
		SyncInterval:      cfg.SyncInterval,
		NoSigs:            true, // the process owns its signals
		Authorization:     bus.Token,
		Username:          bus.User,
		Password:          bus.Password,
	}
	if cfg.Listen != "" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("listen %q: %w", cfg.Listen, err)
		}
		opts.Host = host
		if host == "" {
			opts.Host = "0.0.0.0"
		}
		if opts.Port, err = strconv.Atoi(port); err != nil || opts.Port < 0 || opts.Port > 65535 {
			return nil, fmt.Errorf("listen %q: bad port", cfg.Listen)
		}
		if opts.Port == 0 {
			opts.Port = server.RANDOM_PORT
		}
	}
	return opts, nil
}

// cleanShutdownFile, in EmbeddedConfig.DataDir, is written by Close once
// the server has shut down and removed by NewEmbedded.
const cleanShutdownFile = "sluice-clean-shutdown"

// serverLogger sends nats-server's log to slog. The server's notices
// (startup banner, limits, connections) are debug material for an embedded
// server; its warnings and errors are ours. During Start it also keeps
// what NewEmbedded must act on.
type serverLogger struct {
	log   *slog.Logger
	start *startupLog
}

// startupLog keeps the server's fatal error and its warnings about a
// damaged store while Start runs: nats-server reports both only in its log.
type startupLog struct {
	mu       sync.Mutex
	done     bool
	fatal    string
	repaired []string
	unloaded []consumerLoadError
}

// storeRepairs are the starts of nats-server's warnings when it finds a
// damaged store file and rebuilds or skips it (server/filestore.go,
// server/jetstream.go).
var storeRepairs = []string{"Filestore [", "  Stream metafile", "  Consumer metafile", "  Error ", "Error recreating", "Error adding stream", "Error adding consumer"}

func (s *startupLog) note(fatal bool, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.done:
	case fatal:
		s.fatal = msg
	default:
		if e, ok := parseConsumerLoadError(msg); ok {
			s.unloaded = append(s.unloaded, e)
			return
		}
		for _, p := range storeRepairs {
			if strings.HasPrefix(msg, p) {
				s.repaired = append(s.repaired, msg)
				break
			}
		}
	}
}

// end stops the recording and returns what was recorded.
func (s *startupLog) end() (fatal string, repaired []string, unloaded []consumerLoadError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	return s.fatal, s.repaired, s.unloaded
}

func (l serverLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }
func (l serverLogger) Warnf(format string, v ...any) {
	l.start.note(false, fmt.Sprintf(format, v...))
	l.logf(slog.LevelWarn, format, v)
}
func (l serverLogger) Errorf(format string, v ...any) {
	l.start.note(false, fmt.Sprintf(format, v...))
	l.logf(slog.LevelError, format, v)
}
func (l serverLogger) Fatalf(format string, v ...any) {
	l.start.note(true, fmt.Sprintf(format, v...))
	l.logf(slog.LevelError, format, v)
}
func (l serverLogger) Debugf(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }
func (l serverLogger) Tracef(format string, v ...any) {}

func (l serverLogger) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if l.log.Enabled(ctx, level) {
		l.log.Log(ctx, level, fmt.Sprintf(format, v...))
	}
}
