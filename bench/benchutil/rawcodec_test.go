package benchutil

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// RawCodec sends a RawReq's bytes as they are, receives into a RawReq the
// bytes as they came, and handles protobuf messages as the proto codec.
func TestRawCodec(t *testing.T) {
	msg := wrapperspb.String("sluice")
	wire, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	var c RawCodec
	if got, err := c.Marshal(&RawReq{B: wire}); err != nil || !bytes.Equal(got, wire) {
		t.Errorf("Marshal(RawReq) = %x, %v; want %x", got, err, wire)
	}
	if got, err := c.Marshal(msg); err != nil || !bytes.Equal(got, wire) {
		t.Errorf("Marshal(message) = %x, %v; want %x", got, err, wire)
	}
	r := &RawReq{B: []byte("old")}
	if err := c.Unmarshal(wire, r); err != nil || !bytes.Equal(r.B, wire) {
		t.Errorf("Unmarshal into RawReq: %x, %v; want %x", r.B, err, wire)
	}
	var back wrapperspb.StringValue
	if err := c.Unmarshal(wire, &back); err != nil || back.GetValue() != "sluice" {
		t.Errorf("Unmarshal into a message: %q, %v", back.GetValue(), err)
	}
}
