package nats

import (
	"context"
	"errors"
	"fmt"
	"testing"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/stream"
)

func TestWrapErr(t *testing.T) {
	for _, tc := range []struct {
		err       error
		want      error // nil: none of the sentinels
		retryable bool
	}{
		{natsgo.ErrMaxPayload, stream.ErrRecordTooLarge, false},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamMessageExceedsMaximum}, stream.ErrRecordTooLarge, false},
		{natsgo.ErrNoResponders, stream.ErrUnavailable, true},
		{jetstream.ErrNoStreamResponse, stream.ErrUnavailable, true},
		{jetstream.ErrAsyncPublishTimeout, stream.ErrUnavailable, true},
		{natsgo.ErrDisconnected, stream.ErrUnavailable, true},
		{natsgo.ErrReconnectBufExceeded, stream.ErrUnavailable, true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10023, Description: "insufficient resources"}, stream.ErrUnavailable, true},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), stream.ErrUnavailable, true},
		{errPublishTimeout, stream.ErrUnavailable, true},
		{natsgo.ErrConnectionClosed, stream.ErrClosed, false},
		{jetstream.ErrStreamNotFound, nil, false},
		{context.Canceled, nil, false},
		{natsgo.ErrBadHeaderMsg, nil, false},
	} {
		got := wrapErr("op", tc.err)
		if !errors.Is(got, tc.err) {
			t.Errorf("%v: the original error is lost: %v", tc.err, got)
		}
		for _, sentinel := range []error{stream.ErrRecordTooLarge, stream.ErrUnavailable, stream.ErrClosed} {
			if errors.Is(got, sentinel) != (sentinel == tc.want) {
				t.Errorf("%v → %v: errors.Is(%v) = %v", tc.err, got, sentinel, !(sentinel == tc.want))
			}
		}
		if stream.IsRetryable(got) != tc.retryable {
			t.Errorf("%v: IsRetryable = %v, want %v", tc.err, !tc.retryable, tc.retryable)
		}
	}
}

func TestTopicNames(t *testing.T) {
	for topic, ok := range map[string]bool{
		"sluice.raw.metrics": true,
		"dlq":                true,
		"":                   false,
		".a":                 false,
		"a.":                 false,
		"a..b":               false,
		"a.*":                false,
		"a.>":                false,
		"a b":                false,
		"a/b":                false,
	} {
		if err := checkTopic(topic); (err == nil) != ok {
			t.Errorf("checkTopic(%q) = %v", topic, err)
		}
	}
	if got := streamName("sluice.raw.metrics"); got != "sluice_raw_metrics" {
		t.Errorf("streamName = %q", got)
	}
	for subject, want := range map[string]int32{"t.x.0": 0, "t.x.17": 17, "t.x": -1, "t.x.": -1, "t.y.1": -1, "t.x.-1": -1, "t.x.1.2": -1} {
		p, err := partitionOf("t.x", subject)
		if want < 0 && err == nil || want >= 0 && (err != nil || p != want) {
			t.Errorf("partitionOf(%q) = %d, %v; want %d", subject, p, err, want)
		}
	}
}
