package nats

import (
	"bytes"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/stream"
)

// wireMsg is a message as another client could publish it to a topic's
// subject: its header block parsed by nats.go as on receipt.
type wireMsg struct {
	jetstream.Msg // not called: the methods decode uses are below
	subject       string
	data          []byte
	h             natsgo.Header
}

func (m *wireMsg) Subject() string        { return m.subject }
func (m *wireMsg) Data() []byte           { return m.data }
func (m *wireMsg) Headers() natsgo.Header { return m.h }
func (m *wireMsg) Reply() string          { return "" }
func (m *wireMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: 7}, Timestamp: time.Unix(1, 0)}, nil
}

// FuzzDecodeHeaders feeds decode the header blocks and subjects other
// clients could send to a topic's subjects: it must not panic, must keep
// every header that is not the bus's own or JetStream's, must never hand
// those on, and what it reads without error must produce again to the same
// headers.
func FuzzDecodeHeaders(f *testing.F) {
	f.Add([]byte("NATS/1.0\r\nsluice-tenant: team-a\r\nsluice-items: 42\r\nsluice-signal: metrics\r\nsluice-key: k1\r\nsluice-timestamp: 1700000000000000000\r\n\r\n"), "t.0")
	f.Add([]byte("NATS/1.0\r\nsluice-key-b64: AAEC\r\ncontent-type: application/x-protobuf\r\n\r\n"), "t.3")
	f.Add([]byte("NATS/1.0\r\nsluice-key-b64: !!\r\nsluice-timestamp: soon\r\nsluice-items: -1\r\n\r\n"), "t.x")
	f.Add([]byte("NATS/1.0 503\r\nNats-Rollup: all\r\nsluice-tenant: a\r\nsluice-tenant: b\r\n\r\n"), "t.2")
	f.Add([]byte("NATS/1.0\r\n\r\n"), "other.1")
	f.Fuzz(func(t *testing.T, block []byte, subject string) {
		h, err := natsgo.DecodeHeadersMsg(block)
		if err != nil {
			return // nats.go does not deliver it as a message
		}
		const topic = "t"
		var r stream.Record
		err = decode(&r, topic, &wireMsg{subject: subject, data: []byte("v"), h: h})
		if r.Topic != topic || !bytes.Equal(r.Value, []byte("v")) || r.Offset != 7 {
			t.Fatalf("record %+v", r)
		}
		// Every header but the bus's own is handed on, values in order.
		want := map[string][]string{}
		for k, vs := range h {
			if checkHeaderKey(k) == nil {
				want[k] = vs
			}
		}
		got := map[string][]string{}
		for _, hd := range r.Headers {
			got[hd.Key] = append(got[hd.Key], string(hd.Value))
		}
		if !maps.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("headers %v, want %v", got, want)
		}
		if !slices.IsSortedFunc(r.Headers, func(a, b stream.Header) int { return strings.Compare(a.Key, b.Key) }) {
			t.Fatalf("headers not sorted: %v", r.Headers)
		}
		// What the stages read of them never panics.
		_, _ = strconv.Atoi(string(r.Header(stream.HeaderItems)))
		_ = r.Header(stream.HeaderTenant)
		_ = r.Header(stream.HeaderSignal)
		if err != nil {
			return // reported as an odd message; the next stage dead-letters it
		}

		// A record read without error produces again (a dead letter) to
		// the same headers.
		msg, err := (&Bus{}).message(&r, newTopicInfo(topic, r.Partition+1))
		if err != nil {
			t.Fatalf("produce of a decoded record: %v", err)
		}
		var again stream.Record
		if err := decode(&again, topic, &wireMsg{subject: msg.Subject, data: msg.Data, h: msg.Header}); err != nil {
			t.Fatalf("decode of a produced record: %v", err)
		}
		if again.Partition != r.Partition || !bytes.Equal(again.Key, r.Key) || !again.Timestamp.Equal(r.Timestamp) ||
			!slices.EqualFunc(again.Headers, r.Headers, func(a, b stream.Header) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
			t.Fatalf("round trip: %+v, want %+v", again, r)
		}
	})
}
