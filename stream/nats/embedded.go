package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/nats-io/nats-server/v2/server"
)

// NewEmbedded starts a NATS server with JetStream inside the process, its
// files under cfg.DataDir, and returns a Bus connected to it in process.
// Without cfg.Listen the server opens no port at all. Bus.Close closes the
// connection, then shuts the server down.
func NewEmbedded(cfg EmbeddedConfig, bus Config) (*Bus, error) {
	opts, err := cfg.serverOptions(bus)
	if err != nil {
		return nil, fmt.Errorf("nats: embedded: %w", err)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: embedded: %w", err)
	}
	log := bus.withDefaults().Logger
	if bus.Logger != nil {
		srv.SetLoggerV2(serverLogger{log.With("component", "nats-server")}, false, false, false)
	}
	srv.Start()
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

// serverLogger sends nats-server's log to slog. The server's notices
// (startup banner, limits, connections) are debug material for an embedded
// server; its warnings and errors are ours.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }
func (l serverLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l serverLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l serverLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
func (l serverLogger) Tracef(format string, v ...any)  {}

func (l serverLogger) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if l.log.Enabled(ctx, level) {
		l.log.Log(ctx, level, fmt.Sprintf(format, v...))
	}
}
