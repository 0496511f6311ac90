// Package registry is ferry's multi-tenant OCI registry: distribution/v3's
// registry application (handlers.NewApp, not a reimplementation) behind
// ferry's authorizer middleware.
//
// A request's life: the middleware paces its body and response (guard.go),
// authenticates it (a JWT from the token endpoint, or a ferry org token as
// bearer/basic), resolves the caller's org, reads its parameters once, from
// the query only (params.go: form bodies and duplicates are refused),
// checks the scope the route needs and the org's quota and upload-session
// cap (exchange.go, quota.go), rewrites the repository name from the
// client's view ("web") to the org's internal one ("o-<orgid>/web") in the
// path, the "from" of a cross-repository mount and the HMAC-signed "_state"
// upload parameter, and hands distribution exactly those parameters,
// sealed so it cannot read others. On the way back it records what the
// answer means for the org (its upload sessions, what its repositories
// hold, verified digest aliases, gc activity: each org's own, so no org
// affects or observes another) and rewrites Location and Link headers,
// "_state" and the few bodies that name a repository, so clients never see
// the prefix. The catalog comes from the org's own repository list; the
// referrers API and OCI-Subject, which distribution lacks, are small
// handlers here.
//
// Subpackages: store (orgs, tokens, catalog, blob activity in SQLite or
// Postgres), auth (scopes, JWTs, the token endpoint), gc (mark and sweep
// with a grace window).
package registry
