package ingest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
)

// The tenant of a request is decided by the same rules on HTTP and gRPC
// (Ingester.Tenant): a token writes as its tenants only, without tokens
// the header is refused unless trusted, a repeated or unsafe header is
// refused.
func TestTenantRules(t *testing.T) {
	teams := func(t *testing.T) *Tokens {
		return mustTokens(t, Token{Token: "tok-a", Tenant: "team-a", Tenants: []string{"team-a-staging"}}, Token{Token: "tok-b", Tenant: "team-b"})
	}
	legacy := func(t *testing.T) *Tokens {
		toks, err := ParseTokens("tokens", []byte("old-tok\n"))
		if err != nil {
			t.Fatal(err)
		}
		return toks
	}
	none := func(*testing.T) *Tokens { return nil }
	type outcome struct {
		tenant string // on success
		http   int
		grpc   codes.Code
		msg    string
	}
	ok := func(tenant string) outcome { return outcome{tenant: tenant, http: 200, grpc: codes.OK} }
	badReq := func(msg string) outcome { return outcome{http: 400, grpc: codes.InvalidArgument, msg: msg} }
	forbidden := func(msg string) outcome { return outcome{http: 403, grpc: codes.PermissionDenied, msg: msg} }
	unauth := outcome{http: 401, grpc: codes.Unauthenticated, msg: "bearer token"}
	cases := []struct {
		name   string
		tokens func(*testing.T) *Tokens
		trust  bool
		auth   []string // Authorization values
		orgID  []string // X-Scope-OrgID values
		want   outcome
	}{
		{name: "no tokens, no header", tokens: none, want: ok("anonymous")},
		{name: "no tokens, default tenant named", tokens: none, orgID: []string{"anonymous"}, want: ok("anonymous")},
		{name: "no tokens, other tenant", tokens: none, orgID: []string{"team-x"}, want: forbidden(`X-Scope-OrgID "team-x" refused: without ingest.tokens_file every request is tenant "anonymous" (configure tokens_file to bind tokens to tenants, or set ingest.trust_tenant_header: true`)},
		{name: "trusted header", tokens: none, trust: true, orgID: []string{"team-x"}, want: ok("team-x")},
		{name: "trusted header, path", tokens: none, trust: true, orgID: []string{"../../x"}, want: badReq(`X-Scope-OrgID: invalid tenant "../../x": character "/" at 2`)},
		{name: "trusted header, pipe", tokens: none, trust: true, orgID: []string{"victim|other"}, want: badReq(`character "|" at 6`)},
		{name: "trusted header, dot dot", tokens: none, trust: true, orgID: []string{".."}, want: badReq(`"." and ".." are not tenant names`)},
		{name: "trusted header, twice", tokens: none, trust: true, orgID: []string{"team-x", "team-y"}, want: badReq("X-Scope-OrgID given 2 times")},
		{name: "header twice, same value", tokens: none, trust: true, orgID: []string{"team-x", "team-x"}, want: badReq("X-Scope-OrgID given 2 times")},
		{name: "token, no header", tokens: teams, auth: []string{"Bearer tok-a"}, want: ok("team-a")},
		{name: "token, its other tenant", tokens: teams, auth: []string{"Bearer tok-a"}, orgID: []string{"team-a-staging"}, want: ok("team-a-staging")},
		{name: "token, its tenant named", tokens: teams, auth: []string{"Bearer tok-b"}, orgID: []string{"team-b"}, want: ok("team-b")},
		{name: "token, another's tenant", tokens: teams, auth: []string{"Bearer tok-a"}, orgID: []string{"team-b"}, want: forbidden(`X-Scope-OrgID "team-b" is not a tenant this token may write as (it may write as team-a, team-a-staging)`)},
		{name: "token, default tenant", tokens: teams, auth: []string{"Bearer tok-b"}, orgID: []string{"anonymous"}, want: forbidden(`it may write as team-b`)},
		{name: "token binding beats trust", tokens: teams, trust: true, auth: []string{"Bearer tok-b"}, orgID: []string{"team-a"}, want: forbidden(`it may write as team-b`)},
		{name: "token, header twice", tokens: teams, auth: []string{"Bearer tok-a"}, orgID: []string{"team-a", "team-b"}, want: badReq("X-Scope-OrgID given 2 times")},
		{name: "token twice", tokens: teams, auth: []string{"Bearer tok-a", "Bearer tok-b"}, want: badReq("Authorization given 2 times")},
		{name: "no token", tokens: teams, orgID: []string{"team-a"}, want: unauth},
		{name: "wrong token", tokens: teams, auth: []string{"Bearer tok-c"}, want: unauth},
		{name: "not bearer", tokens: teams, auth: []string{"Basic tok-a"}, want: unauth},
		{name: "legacy token, no header", tokens: legacy, auth: []string{"Bearer old-tok"}, want: ok("anonymous")},
		{name: "legacy token, other tenant", tokens: legacy, auth: []string{"Bearer old-tok"}, orgID: []string{"team-x"}, want: forbidden("one per line, bound to no tenant")},
		{name: "legacy token, trusted header", tokens: legacy, trust: true, auth: []string{"Bearer old-tok"}, orgID: []string{"team-x"}, want: ok("team-x")},
		{name: "legacy token missing", tokens: legacy, trust: true, orgID: []string{"team-x"}, want: unauth},
	}
	pb := samples(t)[otlpwire.Logs]
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bus := newBus(t, 1)
			srv := startServer(t, newIngester(t, Config{Tokens: tc.tokens(t), TrustTenantHeader: tc.trust}, bus))
			topic := testTopics.Raw(otlpwire.Logs)

			t.Run("http", func(t *testing.T) {
				req, _ := http.NewRequest("POST", "http://"+srv.HTTPAddr()+PathLogs, bytes.NewReader(pb))
				req.Header.Set("Content-Type", contentTypeProto)
				if tc.auth != nil {
					req.Header["Authorization"] = tc.auth // one header line each
				}
				if tc.orgID != nil {
					req.Header["X-Scope-Orgid"] = tc.orgID
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.want.http {
					t.Fatalf("status %d, want %d: %q", resp.StatusCode, tc.want.http, body)
				}
				if tc.want.http != 200 {
					if msg := statusMessage(t, resp, body).Message; !strings.Contains(msg, tc.want.msg) {
						t.Errorf("message %q does not contain %q", msg, tc.want.msg)
					}
				}
			})
			t.Run("grpc", func(t *testing.T) {
				md := metadata.MD{}
				if tc.auth != nil {
					md["authorization"] = tc.auth
				}
				if tc.orgID != nil {
					md["x-scope-orgid"] = tc.orgID
				}
				ctx := metadata.NewOutgoingContext(context.Background(), md)
				_, _, err := exportGRPC(ctx, dial(t, srv.GRPCAddr()), otlpwire.Logs)
				if status.Code(err) != tc.want.grpc {
					t.Fatalf("got %v, want %v", err, tc.want.grpc)
				}
				if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.want.msg) {
					t.Errorf("message %q does not contain %q", msg, tc.want.msg)
				}
			})
			recs := bus.Records(topic)
			if tc.want.http != 200 {
				if len(recs) != 0 {
					t.Errorf("%d records on the bus of a refused request", len(recs))
				}
				return
			}
			if len(recs) != 2 {
				t.Fatalf("%d records on the bus, want one per protocol", len(recs))
			}
			for _, r := range recs {
				if got := string(r.Header(stream.HeaderTenant)); got != tc.want.tenant {
					t.Errorf("record of tenant %q, want %q", got, tc.want.tenant)
				}
			}
		})
	}
}

// A token swapped in by SetTokens applies to the next request.
func TestSetTokens(t *testing.T) {
	ing := newIngester(t, Config{Tokens: mustTokens(t, Token{Token: "old", Tenant: "team-a"})}, newBus(t, 1))
	auth := func(tok string) error {
		_, err := ing.Tenant([]string{"Bearer " + tok}, nil)
		return err
	}
	if auth("old") != nil || auth("new") == nil {
		t.Fatal("before: old refused or new accepted")
	}
	ing.SetTokens(mustTokens(t, Token{Token: "new", Tenant: "team-a"}))
	if auth("old") == nil || auth("new") != nil {
		t.Fatal("after: old accepted or new refused")
	}
}
