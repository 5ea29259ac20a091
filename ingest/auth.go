package ingest

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-dev/sluice/internal/tenant"
)

// Tenant decides the tenant of a request from the values of its
// Authorization and X-Scope-OrgID headers (HTTP header lines or gRPC
// metadata values, as received). Both protocols ask it, so the same rules
// hold on each:
//
//   - a header given more than once, or an X-Scope-OrgID that is not a
//     valid tenant name (internal/tenant), is a *BadRequestError;
//   - with tokens (Config.Tokens, SetTokens), a request without one of
//     them is ErrUnauthenticated, and one naming a tenant its token may
//     not write as is ErrForbidden; without X-Scope-OrgID it is the
//     token's tenant;
//   - without tokens every request is Config.DefaultTenant, and naming
//     another tenant is ErrForbidden, unless Config.TrustTenantHeader
//     says a trusted gateway sets the header;
//   - a token of a one-token-per-line file (Tokens.Legacy) is bound to
//     no tenant and is treated as no tokens are, once authenticated.
func (i *Ingester) Tenant(authorization, orgID []string) (string, error) {
	def := i.cfg.DefaultTenant
	toks := i.tokens.Load()
	var g *grant
	if toks != nil {
		if len(authorization) > 1 {
			return "", badRequest(nil, "Authorization given %d times: send one bearer token", len(authorization))
		}
		if len(authorization) == 1 {
			g = toks.lookup(bearerToken(authorization[0]))
		}
		if g == nil {
			return "", ErrUnauthenticated
		}
	}
	if len(orgID) > 1 {
		return "", badRequest(nil, "X-Scope-OrgID given %d times: name one tenant", len(orgID))
	}
	name := ""
	if len(orgID) == 1 {
		name = orgID[0]
	}
	if name == "" {
		if g != nil && g.tenant != "" {
			return g.tenant, nil
		}
		return def, nil
	}
	if err := tenant.Validate(name); err != nil {
		return "", badRequest(err, "X-Scope-OrgID: %v", err)
	}
	switch {
	case g != nil && g.tenant != "":
		if slices.Contains(g.tenants, name) {
			return name, nil
		}
		return "", fmt.Errorf("%w: X-Scope-OrgID %q is not a tenant this token may write as (it may write as %s)", ErrForbidden, name, strings.Join(g.tenants, ", "))
	case name == def || i.cfg.TrustTenantHeader:
		return name, nil
	case g != nil:
		return "", fmt.Errorf("%w: X-Scope-OrgID %q refused: the tokens file lists tokens one per line, bound to no tenant, so they write as %q only (give each token its tenants in the YAML tokens file, or set ingest.trust_tenant_header: true behind a gateway that sets the header)", ErrForbidden, name, def)
	}
	return "", fmt.Errorf("%w: X-Scope-OrgID %q refused: without ingest.tokens_file every request is tenant %q (configure tokens_file to bind tokens to tenants, or set ingest.trust_tenant_header: true behind a gateway that sets the header)", ErrForbidden, name, def)
}

// SetTokens replaces the tokens requests must carry; nil accepts requests
// without one. Requests already admitted keep the tenant they were given.
func (i *Ingester) SetTokens(t *Tokens) { i.tokens.Store(t) }

// tenantKey carries the tenant that admitGRPC decided from a call's
// metadata to its handler.
type tenantKey struct{}

func withTenant(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, tenantKey{}, name)
}
