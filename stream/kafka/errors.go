package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/stream"
)

// wrapErr puts err into sluice's error vocabulary: too-large records, an
// unreachable or overloaded cluster and a closed client become
// stream.ErrRecordTooLarge, stream.ErrUnavailable and stream.ErrClosed, so
// that callers decide with errors.Is and stream.IsRetryable. The original
// error stays in the chain.
func wrapErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, stream.ErrUnavailable), errors.Is(err, stream.ErrRecordTooLarge), errors.Is(err, stream.ErrClosed):
		return fmt.Errorf("kafka: %s: %w", op, err)
	case tooLarge(err):
		return fmt.Errorf("kafka: %s: %w: %w", op, stream.ErrRecordTooLarge, err)
	case errors.Is(err, kgo.ErrClientClosed):
		return fmt.Errorf("kafka: %s: %w: %w", op, stream.ErrClosed, err)
	case transient(err):
		return fmt.Errorf("kafka: %s: %w: %w", op, stream.ErrUnavailable, err)
	}
	return fmt.Errorf("kafka: %s: %w", op, err)
}

// tooLarge: franz-go fails a record above ProducerBatchMaxBytes with
// MESSAGE_TOO_LARGE itself, and brokers answer it for records above the
// topic's max.message.bytes.
func tooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// transient reports whether err may clear by itself: the cluster cannot be
// reached, a leader is moving, too few replicas are in sync, or the record
// was not acknowledged within the delivery timeout.
func transient(err error) bool {
	if kerr.IsRetriable(err) || kgo.IsRetryableBrokerErr(err) {
		return true
	}
	for _, e := range []error{
		context.DeadlineExceeded,
		kgo.ErrRecordTimeout,
		kgo.ErrRecordRetries,
		kgo.ErrMaxBuffered,
		io.EOF,
		io.ErrUnexpectedEOF,
		kerr.RequestTimedOut,
		kerr.CoordinatorNotAvailable,
		kerr.NotCoordinator,
		kerr.RebalanceInProgress,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}
