// Package store keeps the registry's metadata: organizations (with their
// quotas), their access tokens (only a hash of each secret is stored), and
// per org: the catalog, what each repository holds (usage), open upload
// sessions, verified digest aliases, and the recent blob activity that
// makes garbage collection safe while pushes are in flight.
//
// One schema, one set of migrations, two engines: SQLite (modernc.org/sqlite,
// pure Go) by default and PostgreSQL (pgx) when the DSN is a postgres:// URL.
// Queries are written once with ? placeholders and rebound for Postgres.
//
// The store does not know about HTTP, JWTs or repository names on disk;
// internal/registry/auth turns tokens into access, internal/registry maps
// names.
package store
