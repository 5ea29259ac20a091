package benchutil

import "github.com/sluice-dev/sluice/internal/loadgen"

// RawReq is a gRPC message already in wire form, and RawCodec gRPC's
// "proto" codec that sends it as it is: the load generator's.
type (
	RawReq   = loadgen.RawReq
	RawCodec = loadgen.RawCodec
)
