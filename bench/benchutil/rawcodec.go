package benchutil

import "google.golang.org/protobuf/proto"

// RawReq is a gRPC message already in wire form; RawCodec sends it as it
// is, and receives into it the bytes as they came.
type RawReq struct{ B []byte }

// RawCodec is gRPC's "proto" codec for RawReq as well as for protobuf
// messages: the benchmarks send requests encoded once, beforehand.
type RawCodec struct{}

func (RawCodec) Name() string { return "proto" }

func (RawCodec) Marshal(v any) ([]byte, error) {
	if r, ok := v.(*RawReq); ok {
		return r.B, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (RawCodec) Unmarshal(data []byte, v any) error {
	if r, ok := v.(*RawReq); ok {
		r.B = append(r.B[:0], data...)
		return nil
	}
	return proto.Unmarshal(data, v.(proto.Message))
}
