// Package ingest is sluice's OTLP receiver: stateless servers that write each
// export request to the bus and answer only once the bus has acknowledged it.
//
// # Data flow
//
// A request enters through OTLP/gRPC (the metrics, logs and trace collector
// services, on a gRPC server built with NewGRPCServer or Server; identity,
// gzip or zstd, the latter registered by this package) or OTLP/HTTP
// (POST /v1/metrics, /v1/logs, /v1/traces; protobuf or JSON; identity, gzip
// or zstd). Neither decodes it into message structs: gRPC requests are kept
// as bytes by a pass-through codec, JSON is converted straight to the
// protobuf encoding by internal/otlpjson. Ingester.Export then
//
//  1. admits the request's bytes against MaxInflightBytes (refusing, not
//     queueing, above it),
//  2. splits it with otlpwire into complete Export*ServiceRequests, one per
//     partition and no larger than MaxRecordBytes (less room for headers),
//  3. hands each chunk to its lane (signal, tenant, partition): an idle lane
//     produces the chunk at once, a busy one (a record of it is being
//     produced) queues it for its next record, which concatenates every
//     chunk queued meanwhile below MaxRecordBytes (group commit,
//     coalesce.go); records go to the signal's raw topic
//     (stream.Topics.Raw) with the headers content-type, sluice-tenant,
//     sluice-received-at (of the record's first request), sluice-items and
//     sluice-signal, and
//  4. returns when the bus has acknowledged every record holding one of
//     its chunks, or with the first error (the client retries the whole
//     request: at least once). A failed record fails exactly the requests
//     in it on a bus that reports each record's outcome (Kafka), every
//     request of the failed call on the others.
//
// Items too large for a record even alone (one data point, log record or
// span) are not written; the response reports them as OTLP partial success
// (rejected_* and error_message) and they are counted in
// sluice_ingest_rejected_items_total. Nothing is dropped silently.
//
// # Buffer ownership
//
// Record values alias the request body or the pooled Splitter's buffer (a
// record of several requests' chunks is a copy); they are valid during
// Produce only. A request whose client goes away withdraws its chunks that
// are still queued; one already in a record under way leaves its buffers
// to the garbage collector. Bodies, splitters and record slices are
// pooled per request and reused once Produce has returned successfully; when
// Produce fails they are left to the garbage collector, since a bus may still
// hold records it failed to send.
//
// # Errors
//
//	cause                          Export error          gRPC code                      HTTP
//	malformed body, bad tenant     *BadRequestError      INVALID_ARGUMENT               400 + google.rpc.Status
//	bad compression                -                     (grpc: INTERNAL from grpc)     400
//	missing/invalid bearer token   ErrUnauthenticated    UNAUTHENTICATED                401 + WWW-Authenticate
//	tenant not allowed (Tenant)    ErrForbidden          PERMISSION_DENIED              403
//	repeated X-Scope-OrgID         *BadRequestError      INVALID_ARGUMENT               400
//	body over MaxRequestBytes      ErrTooLarge           RESOURCE_EXHAUSTED, no retry   413
//	in-flight limit reached        ErrOverloaded         RESOURCE_EXHAUSTED + RetryInfo 429 + Retry-After
//	bus unavailable / timeout      ErrUnavailable        UNAVAILABLE + RetryInfo        503 + Retry-After
//	bus refused a built record     ErrInternal           INTERNAL                       500
//	unknown path / method / type   -                     UNIMPLEMENTED (grpc)           404 / 405 + Allow / 415
//
// Per the OTLP specification RESOURCE_EXHAUSTED is retried only when it
// carries RetryInfo, so an oversized request is not retried while an
// overload is, after Config.RetryAfter. Error bodies of OTLP/HTTP are a
// google.rpc.Status in the request's encoding whose message says what is
// wrong and where (the otlpwire field path and offset, or the JSON line and
// column).
//
// # Limits
//
// MaxRequestBytes bounds the body as received and once decompressed (a zip
// bomb gets 413; on gRPC, grpc's MaxRecvMsgSize applies to both).
// MaxInflightBytes bounds the memory of all requests being handled: an HTTP
// request whose Content-Length does not fit is refused before its body is
// read; it reserves its first 16 KiB, and its share grows as its bytes arrive
// and with every buffer it fills (the body,
// the decompressed body, the protobuf form of JSON) or it is refused with
// 429; a gRPC call is refused before grpc reads its message while the limit
// is reached, and its message counts from then on. A request larger than the
// whole limit is admitted only when nothing else is in flight, so it is never
// refused forever.
//
// # Tenants and tokens
//
// Ingester.Tenant decides the tenant of every request, on both protocols,
// from its Authorization and X-Scope-OrgID headers (HTTP header lines or
// gRPC metadata). Tenant names follow internal/tenant: at most 150 of
// letters, digits and !-_.*'(), not "." or "..". With tokens
// (Config.Tokens, read by LoadTokens from a YAML tokens file), each token is
// bound to its tenant, used when the request names none, and to the
// tenants it may name; naming another is ErrForbidden. Without tokens, a
// request is Config.DefaultTenant and may not name another, unless
// Config.TrustTenantHeader says a gateway in front sets the header. A
// header given twice is a bad request. On gRPC the decision is taken on
// the call's headers (admitGRPC, a tap handle), before its message is read.
//
// # Slow clients and rotation
//
// An HTTP request reserves of MaxInflightBytes only what its body has sent
// (at most 16 KiB before its first bytes), and HTTPTimeouts end slow and
// idle connections; GRPCLimits bound the calls per connection, keepalive
// pings and idle connections. Reloader reloads the tokens file
// (Ingester.SetTokens) and the TLS files (TLSFiles, read at every
// handshake) on demand and when they change; a file that does not load
// leaves the previous ones in use, and the ingester's metrics count it
// (sluice_ingest_reloads_total, sluice_ingest_reload_success).
//
// # Wiring
//
//	ing, err := ingest.New(ingest.Config{Topics: topics, Registerer: reg, ...}, bus)
//	srv := ingest.NewServer(ing, ingest.ServerConfig{GRPCListen: ":4317", HTTPListen: ":4318"})
//	err = srv.Start()
//	...
//	err = srv.Shutdown(ctx) // stops accepting, waits for in-flight requests and their acks
package ingest
