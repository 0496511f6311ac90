package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Store is the metadata database. It is safe for concurrent use.
type Store struct {
	db       *sql.DB
	postgres bool
	dsn      string
	now      func() time.Time
}

// Option configures Open.
type Option func(*Store)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// IsPostgres reports whether dsn names a PostgreSQL database.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens (creating if needed) the database named by dsn and applies any
// pending migrations. dsn is a postgres:// URL or a SQLite file path.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	s := &Store{now: time.Now, postgres: IsPostgres(dsn), dsn: dsn}
	for _, o := range opts {
		o(s)
	}
	var err error
	if s.postgres {
		s.db, err = sql.Open("pgx", dsn)
	} else {
		// WAL lets the gc verb read while the server writes; busy_timeout
		// makes writers queue instead of failing with SQLITE_BUSY;
		// immediate transactions take the write lock when they begin, so
		// two read-then-write transactions cannot deadlock.
		s.db, err = sql.Open("sqlite", "file:"+dsn+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	}
	if err != nil {
		return nil, fmt.Errorf("open registry db: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks the database is reachable (health checks).
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// q rebinds a query written with ? placeholders for the engine in use.
func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return s.db.ExecContext(ctx, s.q(query), args...)
}

func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.db.QueryRowContext(ctx, s.q(query), args...)
}

// notFound wraps sql.ErrNoRows as errdefs.ErrNotFound.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, errdefs.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func unix(t time.Time) int64 { return t.Unix() }

func fromUnix(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.Unix(v.Int64, 0).UTC()
}
