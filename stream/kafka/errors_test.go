package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/stream"
)

func TestWrapErr(t *testing.T) {
	for _, tc := range []struct {
		err       error
		want      error // nil: none of the sentinels
		retryable bool
	}{
		{kerr.MessageTooLarge, stream.ErrRecordTooLarge, false},
		{fmt.Errorf("%w (uncompressed_bytes=5)", kerr.MessageTooLarge), stream.ErrRecordTooLarge, false},
		{kerr.RecordListTooLarge, stream.ErrRecordTooLarge, false},
		{kerr.NotEnoughReplicas, stream.ErrUnavailable, true},
		{kerr.NotLeaderForPartition, stream.ErrUnavailable, true},
		{kerr.RequestTimedOut, stream.ErrUnavailable, true},
		{kgo.ErrRecordTimeout, stream.ErrUnavailable, true},
		{kgo.ErrRecordRetries, stream.ErrUnavailable, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, stream.ErrUnavailable, true},
		{io.EOF, stream.ErrUnavailable, true},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), stream.ErrUnavailable, true},
		{kgo.ErrClientClosed, stream.ErrClosed, false},
		{kerr.TopicAuthorizationFailed, nil, false},
		{kerr.InvalidTopicException, nil, false},
		{context.Canceled, nil, false},
		{errors.New("other"), nil, false},
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
	if wrapErr("op", nil) != nil {
		t.Error("wrapErr(nil) != nil")
	}
}

func TestConfigValidate(t *testing.T) {
	_, err := New(Config{Compression: "brotli", MaxRecordBytes: -1, ReplicationFactor: -3})
	for _, want := range []string{"brokers", "brotli", "max record bytes", "replication factor"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	b, err := New(Config{Brokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, cfg := range []stream.ConsumerConfig{
		{Topics: []string{"t"}},
		{Group: "g"},
		{Group: "g", Topics: []string{"t"}, Start: stream.Start{Kind: stream.StartAtTime}},
		{Group: "g", Topics: []string{"t"}, Start: stream.Start{Kind: stream.StartAtOffset, Offset: -1}},
		{Group: "g", Topics: []string{"t"}, Start: stream.Start{Kind: 9}},
	} {
		if _, err := b.Consume(cfg); err == nil {
			t.Errorf("Consume(%+v): no error", cfg)
		}
	}
}

// TestBrokerErrors makes a fake cluster (kfake) answer produce requests
// with errors and checks what Produce reports.
func TestBrokerErrors(t *testing.T) {
	for _, tc := range []struct {
		code      *kerr.Error
		want      error
		retryable bool
	}{
		// Retried by franz-go until the produce timeout.
		{kerr.NotEnoughReplicas, stream.ErrUnavailable, true},
		{kerr.MessageTooLarge, stream.ErrRecordTooLarge, false},
		{kerr.TopicAuthorizationFailed, nil, false},
	} {
		t.Run(tc.code.Message, func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cluster.Close) // after the bus's Close
			cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
				cluster.KeepControl()
				return produceError(req.(*kmsg.ProduceRequest), tc.code), nil, true
			})
			b := newBus(t, Config{Brokers: cluster.ListenAddrs(), ProduceTimeout: time.Second})
			if err := b.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			err = b.Produce(context.Background(),
				&stream.Record{Topic: "t", Partition: 0, Value: []byte("a")},
				&stream.Record{Topic: "t", Partition: 1, Value: []byte("b")})
			// franz-go retries a retryable error until the deadline,
			// which is then the error.
			if !tc.retryable && !errors.Is(err, tc.code) {
				t.Errorf("got %v, want %v in the chain", err, tc.code)
			}
			for _, sentinel := range []error{stream.ErrRecordTooLarge, stream.ErrUnavailable} {
				if errors.Is(err, sentinel) != (sentinel == tc.want) {
					t.Errorf("%v: errors.Is(%v) = %v", err, sentinel, !(sentinel == tc.want))
				}
			}
			if stream.IsRetryable(err) != tc.retryable {
				t.Errorf("%v: IsRetryable = %v", err, !tc.retryable)
			}
		})
	}
}

func produceError(req *kmsg.ProduceRequest, code *kerr.Error) *kmsg.ProduceResponse {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code.Code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func TestBrokerUnreachable(t *testing.T) {
	addr := testproc.FreeAddr(t) // nothing listens there
	b := newBus(t, Config{Brokers: []string{addr}, ProduceTimeout: time.Second})
	if err := b.Ping(context.Background()); !errors.Is(err, stream.ErrUnavailable) {
		t.Errorf("Ping: %v, want ErrUnavailable", err)
	}
	err := b.Produce(context.Background(), &stream.Record{Topic: "t", Partition: -1, Value: []byte("x")})
	if !stream.IsRetryable(err) {
		t.Errorf("Produce: %v, want a retryable error", err)
	}
	if err := b.EnsureTopics(context.Background(), stream.TopicSpec{Name: "t"}); !stream.IsRetryable(err) {
		t.Errorf("EnsureTopics: %v, want a retryable error", err)
	}
}
