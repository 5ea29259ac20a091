package nats

import (
	"context"
	"errors"
	"fmt"
	"net"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/stream"
)

// errPublishTimeout is the cause of a Produce context that ran out of
// Config.PublishTimeout (rather than out of the caller's deadline).
var errPublishTimeout = fmt.Errorf("%w: no acknowledgement within the publish timeout", stream.ErrUnavailable)

// wrapErr puts err into sluice's error vocabulary: too-large records,
// an unreachable or overloaded server and a closed connection become
// stream.ErrRecordTooLarge, stream.ErrUnavailable and stream.ErrClosed, so
// that callers decide with errors.Is and stream.IsRetryable. The original
// error stays in the chain.
func wrapErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, stream.ErrUnavailable), errors.Is(err, stream.ErrRecordTooLarge), errors.Is(err, stream.ErrClosed):
		return fmt.Errorf("nats: %s: %w", op, err)
	case tooLarge(err):
		return fmt.Errorf("nats: %s: %w: %w", op, stream.ErrRecordTooLarge, err)
	case closed(err):
		return fmt.Errorf("nats: %s: %w: %w", op, stream.ErrClosed, err)
	case transient(err):
		return fmt.Errorf("nats: %s: %w: %w", op, stream.ErrUnavailable, err)
	}
	return fmt.Errorf("nats: %s: %w", op, err)
}

func tooLarge(err error) bool {
	return errors.Is(err, natsgo.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum)
}

func closed(err error) bool {
	return errors.Is(err, natsgo.ErrConnectionClosed) ||
		errors.Is(err, jetstream.ErrConnectionClosed) ||
		errors.Is(err, natsgo.ErrConnectionDraining) ||
		errors.Is(err, jetstream.ErrJetStreamPublisherClosed)
}

// transient reports whether err may clear by itself: the server cannot be
// reached, is restarting or electing a leader, or is out of resources.
func transient(err error) bool {
	for _, e := range transientErrs {
		if errors.Is(err, e) {
			return true
		}
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code >= 500 {
		return true // e.g. 503 insufficient resources, JetStream not (yet) available
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

var transientErrs = []error{
	context.DeadlineExceeded,
	natsgo.ErrTimeout,
	natsgo.ErrNoResponders,
	natsgo.ErrDisconnected,
	natsgo.ErrConnectionReconnecting,
	natsgo.ErrReconnectBufExceeded,
	natsgo.ErrNoServers,
	natsgo.ErrStaleConnection,
	natsgo.ErrSlowConsumer,
	jetstream.ErrNoStreamResponse,
	jetstream.ErrAsyncPublishTimeout,
	jetstream.ErrTooManyStalledMsgs,
	jetstream.ErrNoHeartbeat,
	jetstream.ErrServerShutdown,
	jetstream.ErrConsumerLeadershipChanged,
}
