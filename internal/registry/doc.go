// Package registry is ferry's multi-tenant OCI registry: distribution/v3's
// registry application (handlers.NewApp, not a reimplementation) behind
// ferry's authorizer middleware.
//
// A request's life: the middleware authenticates it (a JWT from the token
// endpoint, or a ferry org token as bearer/basic), resolves the caller's
// org, checks the scope the route needs, rewrites the repository name from
// the client's view ("web") to the org's internal one ("o-<orgid>/web") in
// the path, the "from" of a cross-repository mount and the HMAC-signed
// "_state" upload parameter, and passes it to distribution. On the way back
// it rewrites Location and Link headers, "_state" and the few bodies that
// name a repository, so clients never see the prefix. The catalog comes
// from the org's own repository list; the referrers API and OCI-Subject,
// which distribution lacks, are small handlers here.
//
// Subpackages: store (orgs, tokens, catalog, blob activity in SQLite or
// Postgres), auth (scopes, JWTs, the token endpoint), gc (mark and sweep
// with a grace window).
package registry
