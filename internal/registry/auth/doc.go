// Package auth implements the Docker token flow for ferry's registry: it
// parses and intersects scopes ("repository:NAME:pull,push"), mints and
// verifies the short-lived JWTs the token endpoint hands out, writes the
// WWW-Authenticate challenges, and serves the token endpoint itself
// (https://distribution.github.io/distribution/spec/auth/token/).
//
// It knows orgs and tokens only through the small Authenticator interface;
// which repository a request touches is the caller's business.
package auth
