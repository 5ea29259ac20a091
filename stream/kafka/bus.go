package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/sluice-dev/sluice/stream"
)

// Bus is a stream.Bus on Apache Kafka. It is safe for concurrent use.
type Bus struct {
	cfg   Config
	log   *slog.Logger
	cl    *kgo.Client // produces, and carries the admin requests
	admin *kadm.Client

	mu        sync.Mutex
	topics    map[string]int32             // partition counts
	consumers map[stream.Consumer]struct{} // *consumer and *txConsumer
	members   int                          // consumers ever opened, numbering their metrics

	calls  sync.Pool // of *produceCall
	closed atomic.Bool

	// stateCl produces the values of the state stores: without the bus's
	// compression, as the values come compressed (a checkpoint is an S2
	// block, which zstd would work over again for a third less). Made at
	// the first StateStore; nil when the bus does not compress.
	stateOnce sync.Once
	stateCl   *kgo.Client
	stateErr  error
}

var _ stream.Bus = (*Bus)(nil)

// New returns a Bus for the cluster at cfg.Brokers. It does not contact
// the brokers (Ping does); the clients connect on first use and reconnect
// by themselves.
func New(cfg Config) (*Bus, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("kafka: config: %w", err)
	}
	opts := append(cfg.clientOpts(cfg.ClientID+"-producer"), cfg.producerOpts()...)
	opts = append(opts, metricsOpts(cfg.Registerer)...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: client: %w", err)
	}
	return &Bus{
		cfg:       cfg,
		log:       cfg.Logger,
		cl:        cl,
		admin:     kadm.NewClient(cl),
		topics:    map[string]int32{},
		consumers: map[stream.Consumer]struct{}{},
	}, nil
}

// metricsOpts hooks franz-go's Prometheus metrics for one client, labelled
// with its client id.
func metricsOpts(reg prometheus.Registerer) []kgo.Opt {
	if reg == nil {
		return nil
	}
	// The default details, and the compressed bytes too: what the bus
	// stores, beside what sluice wrote (sluice bench reports it per item).
	m := kprom.NewMetrics(metricsNamespace, kprom.Registerer(reg), kprom.WithClientLabel(),
		kprom.FetchAndProduceDetail(kprom.ByNode, kprom.ByTopic, kprom.UncompressedBytes, kprom.CompressedBytes))
	return []kgo.Opt{kgo.WithHooks(m)}
}

// Ping asks the brokers for their metadata; it fails with
// stream.ErrUnavailable when none answers.
func (b *Bus) Ping(ctx context.Context) error {
	if b.closed.Load() {
		return fmt.Errorf("kafka: ping: %w", stream.ErrClosed)
	}
	ctx, cancel := b.bound(ctx)
	defer cancel()
	if err := b.cl.Ping(ctx); err != nil {
		if errors.Is(err, kgo.ErrClientClosed) {
			return fmt.Errorf("kafka: ping: %w: %w", stream.ErrClosed, err)
		}
		return fmt.Errorf("kafka: ping: %w: %w", stream.ErrUnavailable, err)
	}
	return nil
}

// bound limits ctx to the produce timeout when it has no deadline.
func (b *Bus) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, b.cfg.ProduceTimeout)
}

// Close closes the consumers opened by Consume (committing what was
// marked and leaving their groups) and ConsumeTransactional (aborting an
// open transaction), then the producer: a Produce still
// waiting fails with stream.ErrClosed.
func (b *Bus) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.mu.Lock()
	consumers := make([]stream.Consumer, 0, len(b.consumers))
	for c := range b.consumers {
		consumers = append(consumers, c)
	}
	b.mu.Unlock()
	var errs []error
	for _, c := range consumers {
		errs = append(errs, c.Close())
	}
	b.cl.Close()
	b.stateOnce.Do(func() {}) // waits for a state client being made; none is after
	if b.stateCl != nil {
		b.stateCl.Close()
	}
	return errors.Join(errs...)
}

func (b *Bus) nextMember(group string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.members++
	return b.cfg.ClientID + "-consumer-" + group + "-" + strconv.Itoa(b.members)
}
