package nats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/stream"
)

// Bus is a stream.Bus on NATS JetStream. It is safe for concurrent use.
type Bus struct {
	cfg Config
	log *slog.Logger
	nc  *natsgo.Conn
	js  jetstream.JetStream
	srv *server.Server // set by NewEmbedded
	// marker is the file Close writes after the embedded server shut
	// down cleanly.
	marker string
	// positions is the directory where Close records the groups'
	// positions (positions.go); exactPositions that no other client can
	// move them (no listener).
	positions      string
	exactPositions bool
	// lock is NewEmbedded's lock of its data directory, released by Close
	// after the server has shut down.
	lock io.Closer
	// unregister removes what NewEmbedded registered on its Registerer.
	unregister func()
	// fault is what the embedded store's watch last found it cannot
	// write (nil: nothing); watched is closed when the watch has ended.
	fault   atomic.Pointer[storeFault]
	watched chan struct{}
	// unwritten holds, by stream, sequences that failed writes used up
	// without storing a record (storefault.go): not losses.
	unwrittenMu sync.Mutex
	unwritten   map[string][]uint64

	mu     sync.RWMutex
	topics map[string]*topicInfo

	rr        atomic.Uint32   // round robin over partitions for records without key
	done      context.Context // ends at Close, stopping the consumers' Polls
	cancel    context.CancelFunc
	closed    atomic.Bool
	closeOnce sync.Once
}

var _ stream.Bus = (*Bus)(nil)

// New connects to the NATS server at cfg.URL. The first connection must
// succeed (an unreachable server gives an error wrapping
// stream.ErrUnavailable, so the caller may retry); later disconnections are
// repaired in the background, forever, with backoff. While disconnected,
// Produce fails with stream.ErrUnavailable once cfg.PublishTimeout has
// passed and Ping fails.
func New(cfg Config) (*Bus, error) {
	if cfg.URL == "" {
		return nil, errors.New("nats: config: url is required")
	}
	return connect(cfg, nil)
}

func connect(cfg Config, srv *server.Server) (*Bus, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("nats: config: %w", err)
	}
	b := &Bus{cfg: cfg, log: cfg.Logger, srv: srv, topics: map[string]*topicInfo{}}
	b.done, b.cancel = context.WithCancel(context.Background())

	opts := []natsgo.Option{
		natsgo.Name(cfg.Name),
		natsgo.MaxReconnects(-1),
		natsgo.CustomReconnectDelay(reconnectDelay),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			if err != nil {
				b.log.Warn("nats: disconnected, reconnecting", "err", err)
			}
		}),
		natsgo.ReconnectHandler(func(nc *natsgo.Conn) {
			b.log.Info("nats: reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			b.log.Warn("nats: asynchronous error", "err", err, "subject", subject)
		}),
	}
	switch {
	case cfg.Token != "":
		opts = append(opts, natsgo.Token(cfg.Token))
	case cfg.User != "" || cfg.Password != "":
		opts = append(opts, natsgo.UserInfo(cfg.User, cfg.Password))
	}
	url := cfg.URL
	if srv != nil {
		opts = append(opts, natsgo.InProcessServer(srv))
		url = natsgo.DefaultURL // not dialled: the in-process provider is used instead
	} else {
		if cfg.CredentialsFile != "" {
			opts = append(opts, natsgo.UserCredentials(cfg.CredentialsFile))
		}
		if cfg.TLS != nil {
			opts = append(opts, natsgo.Secure(cfg.TLS))
		}
	}

	nc, err := natsgo.Connect(url, opts...)
	if err != nil {
		b.cancel()
		return nil, wrapErr("connect "+redactURL(url), err)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout),
		jetstream.WithDefaultTimeout(cfg.PublishTimeout),
	)
	if err != nil {
		nc.Close()
		b.cancel()
		return nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	b.nc, b.js = nc, js
	return b, nil
}

// reconnectDelay backs off from 100ms to 2s, with jitter so that many
// clients do not come back in step after a server restart.
func reconnectDelay(attempts int) time.Duration {
	d := min(100*time.Millisecond<<min(attempts, 5), 2*time.Second)
	return d - d/4 + rand.N(d/2)
}

// redactURL hides the credentials of connection URLs before they appear in
// an error.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = url.User("***")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// Ping reports whether the connection is up and the JetStream API
// answers.
func (b *Bus) Ping(ctx context.Context) error {
	if b.closed.Load() {
		return fmt.Errorf("nats: ping: %w", stream.ErrClosed)
	}
	if st := b.nc.Status(); st != natsgo.CONNECTED {
		return fmt.Errorf("nats: ping: %w: connection %s", stream.ErrUnavailable, st)
	}
	if _, err := b.js.AccountInfo(ctx); err != nil {
		if closed(err) {
			return wrapErr("ping", err)
		}
		return fmt.Errorf("nats: ping: %w: %w", stream.ErrUnavailable, err)
	}
	if f := b.fault.Load(); f != nil {
		// The server answers, but refuses writes: not ready to ingest.
		return fmt.Errorf("nats: ping: %w: the embedded store cannot be written until JetStream restarts: %s", stream.ErrUnavailable, f)
	}
	return nil
}

// ClientURL is the address other processes use to reach the server: the
// embedded server's listener, "" for an embedded server without one, or
// Config.URL.
func (b *Bus) ClientURL() string {
	if b.srv == nil {
		return b.cfg.URL
	}
	if b.srv.Addr() == nil {
		return ""
	}
	return b.srv.ClientURL()
}

// Close closes the connection: open consumers stop with stream.ErrClosed
// and records they polled but did not commit are delivered again later.
// With NewEmbedded it then shuts the server down and waits for it to
// flush its files.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		b.cancel()
		if b.watched != nil {
			<-b.watched // no restart of JetStream during the shutdown
		}
		if b.unregister != nil {
			b.unregister()
		}
		// Acks of committed records were flushed by Commit; nothing
		// else is in flight that Close should wait for.
		b.nc.Close()
		if b.srv != nil {
			// Read before the shutdown, from memory; a client of the
			// listener may still acknowledge records meanwhile, which
			// only puts the record behind (see checkPositions).
			var pos map[[3]string]position
			var posErr error
			if b.positions != "" {
				pos, posErr = consumerPositions(b.srv)
			}
			b.srv.Shutdown()
			b.srv.WaitForShutdown()
			if b.positions != "" {
				if posErr == nil {
					posErr = recordPositions(b.positions, positionsOf(pos, b.exactPositions))
				}
				if posErr != nil {
					// A stale record must not be compared at the next start.
					b.log.Warn("nats: embedded: cannot record the groups' positions; they are not checked at the next start", "err", posErr)
					os.Remove(filepath.Join(b.positions, positionsFile))
				}
			}
			if b.marker != "" {
				if err := os.WriteFile(b.marker, nil, 0o644); err != nil {
					b.log.Warn("nats: embedded: cannot mark the clean shutdown", "err", err)
				}
			}
			if b.lock != nil {
				b.lock.Close()
			}
		}
	})
	return nil
}

func (b *Bus) addUnwritten(stream string, seq uint64) {
	b.unwrittenMu.Lock()
	defer b.unwrittenMu.Unlock()
	if b.unwritten == nil {
		b.unwritten = map[string][]uint64{}
	}
	b.unwritten[stream] = append(b.unwritten[stream], seq)
}

// unwrittenIn counts the sequences of stream in [from, to) that failed
// writes used up.
func (b *Bus) unwrittenIn(stream string, from, to uint64) uint64 {
	b.unwrittenMu.Lock()
	defer b.unwrittenMu.Unlock()
	var n uint64
	for _, s := range b.unwritten[stream] {
		if s >= from && s < to {
			n++
		}
	}
	return n
}
