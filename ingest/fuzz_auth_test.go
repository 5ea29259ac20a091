package ingest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/tenant"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

// fuzzTokens: team-a's token may also write as team-a-dev.
func fuzzTokens(t testing.TB) *Tokens {
	return mustTokens(t, Token{Token: "tok-a", Tenant: "team-a", Tenants: []string{"team-a-dev"}}, Token{Token: "tok-b", Tenant: "team-b"})
}

// fuzzTenantIngester adds the seeds of the tenant fuzz tests, whose
// arguments are two Authorization and two X-Scope-OrgID values ("" for
// none), and returns an ingester with fuzzTokens and its bus.
func fuzzTenantIngester(f *testing.F) (*memory.Bus, *Ingester) {
	for _, seed := range [][4]string{
		{"Bearer tok-a", "", "team-a-dev", ""},
		{"Bearer tok-b", "", "team-a", ""},
		{"bearer  tok-a ", "Bearer tok-b", "team-a", "team-a"},
		{"Bearer tok-a", "Bearer tok-a", "", ""},
		{"Bearer tok-a", "", "team-a", "team-a-dev"},
		{"Bearer tok-a", "", "../../x", ""},
		{"Bearer tok-b", "", "..", ""},
		{"", "", "victim|other", ""},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	bus := newBus(f, 1)
	return bus, newIngester(f, Config{Tokens: fuzzTokens(f)}, bus)
}

// headerValues are the header values of a fuzz test's arguments: those not "".
func headerValues(vs ...string) []string {
	var out []string
	for _, v := range vs {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// checkTenantDecision checks an outcome of Tenant against its rules.
func checkTenantDecision(t *testing.T, auth, orgID []string, got string, err error) {
	t.Helper()
	if err != nil {
		return
	}
	if len(auth) != 1 || len(orgID) > 1 {
		t.Fatalf("accepted Authorization %q, X-Scope-OrgID %q", auth, orgID)
	}
	if tenant.Validate(got) != nil {
		t.Fatalf("accepted invalid tenant %q", got)
	}
	tok := bearerToken(auth[0])
	allowed := map[string][]string{"tok-a": {"team-a", "team-a-dev"}, "tok-b": {"team-b"}}[tok]
	if !slices.Contains(allowed, got) {
		t.Fatalf("token %q wrote as %q", tok, got)
	}
	if len(orgID) == 1 && orgID[0] != "" && orgID[0] != got {
		t.Fatalf("X-Scope-OrgID %q, tenant %q", orgID[0], got)
	}
}

// FuzzHTTPTenantHeaders sends requests with any Authorization and
// X-Scope-OrgID header lines through the HTTP handler: a request is
// accepted only with a valid token, as a tenant that token allows, and the
// records carry that tenant.
func FuzzHTTPTenantHeaders(f *testing.F) {
	bus, ing := fuzzTenantIngester(f)
	h := ing.HTTPHandler()
	pb := mustMarshal(f, logsRequest(1, 1))
	f.Fuzz(func(t *testing.T, auth1, auth2, org1, org2 string) {
		req := httptest.NewRequest("POST", PathLogs, bytes.NewReader(pb))
		req.Header.Set("Content-Type", contentTypeProto)
		auth, org := headerValues(auth1, auth2), headerValues(org1, org2)
		req.Header["Authorization"], req.Header["X-Scope-Orgid"] = auth, org
		before := len(bus.Records(testTopics.Raw(otlpwire.Logs)))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		got, err := ing.Tenant(auth, org)
		checkTenantDecision(t, auth, org, got, err)
		recs := bus.Records(testTopics.Raw(otlpwire.Logs))[before:]
		switch w.Code {
		case http.StatusOK:
			if err != nil || len(recs) != 1 || string(recs[0].Header(stream.HeaderTenant)) != got {
				t.Fatalf("200 for Authorization %q, X-Scope-OrgID %q (Tenant: %q, %v; %d records)", auth, org, got, err, len(recs))
			}
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
			if err == nil || len(recs) != 0 {
				t.Fatalf("%d for Authorization %q, X-Scope-OrgID %q, but Tenant accepts it (%q) or records were written", w.Code, auth, org, got)
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}

// FuzzGRPCMetadata calls the gRPC server with any authorization and
// x-scope-orgid metadata values: a call is accepted only with a valid
// token, as a tenant that token allows, and is otherwise refused with the
// code of its cause.
func FuzzGRPCMetadata(f *testing.F) {
	bus, ing := fuzzTenantIngester(f)
	srv := startServer(f, ing)
	cc := dial(f, srv.GRPCAddr())
	f.Fuzz(func(t *testing.T, auth1, auth2, org1, org2 string) {
		md := metadata.MD{"authorization": headerValues(auth1, auth2), "x-scope-orgid": headerValues(org1, org2)}
		before := len(bus.Records(testTopics.Raw(otlpwire.Logs)))
		_, _, err := exportGRPC(metadata.NewOutgoingContext(context.Background(), md), cc, otlpwire.Logs)
		got, terr := ing.Tenant(md["authorization"], md["x-scope-orgid"])
		checkTenantDecision(t, md["authorization"], md["x-scope-orgid"], got, terr)
		recs := bus.Records(testTopics.Raw(otlpwire.Logs))[before:]
		switch code := status.Code(err); code {
		case codes.OK:
			if terr != nil || len(recs) == 0 || string(recs[0].Header(stream.HeaderTenant)) != got {
				t.Fatalf("OK for metadata %v (Tenant: %q, %v)", md, got, terr)
			}
		case codes.InvalidArgument, codes.Unauthenticated, codes.PermissionDenied:
			if len(recs) != 0 {
				t.Fatalf("%v for metadata %v, but records were written", code, md)
			}
			if terr == nil && !strings.Contains(err.Error(), "header") {
				// grpc itself refuses metadata it cannot send (Internal
				// on the client); a server refusal must agree with Tenant.
				t.Fatalf("%v for metadata %v, but Tenant accepts it (%q)", err, md, got)
			}
		case codes.Internal:
			// The client refused to send metadata that is not a valid
			// header value; nothing reached the server.
			if len(recs) != 0 {
				t.Fatalf("%v, but records were written", err)
			}
		default:
			t.Fatalf("metadata %v: %v", md, err)
		}
	})
}

// FuzzParseTokens: any tokens file is either refused with an error or
// gives tokens that all have a valid tenant and a non-empty, space-free
// token.
func FuzzParseTokens(f *testing.F) {
	for _, name := range []string{"teams.good.yaml", "legacy.good.txt", "duplicate.bad.yaml", "tenant.bad.yaml", "unknown-key.bad.yaml", "token-as-key.bad.yaml", "syntax.bad.yaml"} {
		data, err := readTestdata("testdata/tokens/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		toks, err := ParseTokens("tokens.yaml", data)
		if err != nil {
			if !strings.Contains(err.Error(), "tokens.yaml") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		if toks.Len() == 0 {
			t.Fatal("no tokens and no error")
		}
		for _, g := range toks.grants {
			if toks.Legacy() != (g.tenant == "") {
				t.Fatalf("grant %+v in a set with legacy %v", g, toks.Legacy())
			}
			for _, name := range g.tenants {
				if tenant.Validate(name) != nil {
					t.Fatalf("invalid tenant %q accepted", name)
				}
			}
		}
	})
}
