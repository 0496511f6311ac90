package controlplane

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Store is the control plane's database. It is safe for concurrent use,
// also by several processes (replicas) on one database.
type Store struct {
	db *sql.DB
	// CPUOvercommit is how many machine CPUs (vCPUs) a host CPU takes
	// (0: DefaultCPUOvercommit): a host's free CPUs are its CPUs times
	// this less those of the machines placed on it, whatever it reports.
	CPUOvercommit int
}

// DefaultCPUOvercommit is a host CPU's share of machine CPUs: guests
// that mostly wait share cores, as Fly's shared CPUs do (1/16 each).
const DefaultCPUOvercommit = 16

func (s *Store) overcommit() int {
	if s.CPUOvercommit > 0 {
		return s.CPUOvercommit
	}
	return DefaultCPUOvercommit
}

// freeCPUs is the SQL for the free CPUs of host $1 at overcommit $2:
// what the machines placed on it leave.
const freeCPUs = `cpus * $2 - (SELECT COALESCE(SUM(cpus), 0) FROM machines WHERE host_id = $1)`

// Capacity is what a host offers machines.
type Capacity struct {
	CPUs     int   `json:"cpus"`
	MemoryMB int64 `json:"memory_mb"`
	DiskMB   int64 `json:"disk_mb"`
}

// Host is a host as it registers: its identity, its API address and its
// total and free capacity.
type Host struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Addr string `json:"addr"` // the host's API URL, as the control plane reaches it
	// UnderlayIP is the address other hosts reach this one on (cross-host
	// networks tunnel to it, VXLAN's source): the one its overlay agent
	// last reported (--underlay, or its route to the control plane); a
	// registration without one keeps it.
	UnderlayIP string   `json:"underlay_ip,omitempty"`
	Size       Capacity `json:"capacity"`
	Free       Capacity `json:"free"`
	// APIToken is the bearer token of the host's API, sent at
	// registration so the control plane can create machines there and
	// route machine verbs to it; never listed back.
	APIToken string `json:"api_token,omitempty"`
}

// Lease is a host's lease: valid until Expires, for Generation only.
type Lease struct {
	Generation int64     `json:"generation"`
	Expires    time.Time `json:"expires_at"`
	TTL        Duration  `json:"ttl"`
}

// HostStatus is a host with its lease, as the control plane lists it.
type HostStatus struct {
	Host
	Lease
	Renewed time.Time `json:"renewed_at"`
	Live    bool      `json:"live"` // the lease has not expired
}

// Open opens the Postgres database dsn and applies pending migrations.
func Open(ctx context.Context, dsn string) (*Store, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return nil, fmt.Errorf("controlplane: --db must be a postgres:// URL (the control plane's state lives in Postgres), got %q: %w", dsn, errdefs.ErrInvalidArgument)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("controlplane db: %w", err)
	}
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

var migrations = []string{
	`CREATE TABLE hosts (
		id             TEXT PRIMARY KEY,
		name           TEXT NOT NULL,
		addr           TEXT NOT NULL,
		cpus           INTEGER NOT NULL,
		memory_mb      BIGINT NOT NULL,
		disk_mb        BIGINT NOT NULL,
		free_cpus      INTEGER NOT NULL,
		free_memory_mb BIGINT NOT NULL,
		free_disk_mb   BIGINT NOT NULL,
		joined_at      TIMESTAMPTZ NOT NULL DEFAULT now()
	);
	CREATE TABLE host_leases (
		host_id    TEXT PRIMARY KEY REFERENCES hosts(id) ON DELETE CASCADE,
		generation BIGINT NOT NULL,
		expires_at TIMESTAMPTZ NOT NULL,
		renewed_at TIMESTAMPTZ NOT NULL
	);`,
	`CREATE TABLE apps (
		id   TEXT PRIMARY KEY,
		name TEXT NOT NULL UNIQUE
	);
	CREATE TABLE volumes (
		id           TEXT PRIMARY KEY,
		app_id       TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
		name         TEXT NOT NULL,
		size_mb      BIGINT NOT NULL,
		home_host_id TEXT NOT NULL REFERENCES hosts(id),
		UNIQUE (app_id, name)
	);
	CREATE TABLE machines (
		id                TEXT PRIMARY KEY,
		app_id            TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
		name              TEXT NOT NULL,
		cpus              INTEGER NOT NULL,
		memory_mb         BIGINT NOT NULL,
		volume_id         TEXT REFERENCES volumes(id),
		desired           TEXT NOT NULL DEFAULT 'started',
		host_id           TEXT REFERENCES hosts(id),
		placed_generation BIGINT,
		created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
		UNIQUE (app_id, name)
	);
	CREATE INDEX machines_host ON machines(host_id, app_id);`,
	migrationOverlay, // overlay.go
	`ALTER TABLE hosts ADD COLUMN api_token TEXT NOT NULL DEFAULT '',
		ADD COLUMN underlay_ip TEXT NOT NULL DEFAULT '';
	ALTER TABLE machines ADD COLUMN config JSONB,
		ADD COLUMN restart_policy TEXT NOT NULL DEFAULT '';`,
	// A host's underlay address is one fact: hosts.underlay_ip, which the
	// overlay sync writes (it was also kept per network, in overlay_hosts).
	`UPDATE hosts h SET underlay_ip = o.underlay FROM overlay_hosts o WHERE o.host_id = h.id;
	ALTER TABLE overlay_hosts DROP COLUMN underlay;`,
}

// migrate applies pending migrations in one transaction under an advisory
// lock, so replicas starting together do not both migrate.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("controlplane migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(727170)`); err != nil {
		return fmt.Errorf("controlplane migrate: lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS controlplane_migrations (version INTEGER PRIMARY KEY)`); err != nil {
		return fmt.Errorf("controlplane migrate: %w", err)
	}
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM controlplane_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("controlplane migrate: %w", err)
	}
	for v := have + 1; v <= len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("controlplane migrate to %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO controlplane_migrations(version) VALUES ($1)`, v); err != nil {
			return fmt.Errorf("controlplane migrate to %d: %w", v, err)
		}
	}
	return tx.Commit()
}

// Register records h (inserting or updating it) and gives it a new lease of
// ttl whose generation is one more than any it held: an older holder's
// renewals fail from now on.
func (s *Store) Register(ctx context.Context, h Host, ttl time.Duration) (Lease, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Lease{}, fmt.Errorf("register host %s: %w", h.ID, err)
	}
	defer func() { _ = tx.Rollback() }()
	_, err = tx.ExecContext(ctx, `INSERT INTO hosts (id, name, addr, cpus, memory_mb, disk_mb, free_cpus, free_memory_mb, free_disk_mb, api_token, underlay_ip)
		VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10)
		ON CONFLICT (id) DO UPDATE SET name = $2, addr = $3, cpus = $4, memory_mb = $5, disk_mb = $6,
			free_memory_mb = $7, free_disk_mb = $8, api_token = $9, underlay_ip = COALESCE(NULLIF($10, ''), hosts.underlay_ip)`,
		h.ID, h.Name, h.Addr, h.Size.CPUs, h.Size.MemoryMB, h.Size.DiskMB, h.Free.MemoryMB, h.Free.DiskMB, h.APIToken, h.UnderlayIP)
	if err != nil {
		return Lease{}, fmt.Errorf("register host %s: %w", h.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE hosts SET free_cpus = `+freeCPUs+` WHERE id = $1`, h.ID, s.overcommit()); err != nil {
		return Lease{}, fmt.Errorf("register host %s: %w", h.ID, err)
	}
	l := Lease{TTL: Duration(ttl)}
	err = tx.QueryRowContext(ctx, `INSERT INTO host_leases (host_id, generation, expires_at, renewed_at)
		VALUES ($1, 1, now() + $2 * interval '1 millisecond', now())
		ON CONFLICT (host_id) DO UPDATE SET generation = host_leases.generation + 1,
			expires_at = EXCLUDED.expires_at, renewed_at = EXCLUDED.renewed_at
		RETURNING generation, expires_at`, h.ID, ttl.Milliseconds()).Scan(&l.Generation, &l.Expires)
	if err != nil {
		return Lease{}, fmt.Errorf("register host %s: lease: %w", h.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return Lease{}, fmt.Errorf("register host %s: %w", h.ID, err)
	}
	return l, nil
}

// ErrLeaseLost is wrapped by Renew when the lease expired or a newer
// registration holds it; the host must register again (a new generation).
var ErrLeaseLost = fmt.Errorf("lease lost: %w", errdefs.ErrConflict)

// Renew extends host id's lease of generation gen by ttl and records its
// free memory and disk (its free CPUs are what its placed machines leave,
// at CPUOvercommit). It fails with ErrLeaseLost once the lease has expired or
// gen is not the current generation.
func (s *Store) Renew(ctx context.Context, id string, gen int64, free Capacity, ttl time.Duration) (Lease, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Lease{}, fmt.Errorf("renew lease of %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()
	l := Lease{Generation: gen, TTL: Duration(ttl)}
	err = tx.QueryRowContext(ctx, `UPDATE host_leases SET expires_at = now() + $3 * interval '1 millisecond', renewed_at = now()
		WHERE host_id = $1 AND generation = $2 AND expires_at > now() RETURNING expires_at`, id, gen, ttl.Milliseconds()).Scan(&l.Expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Lease{}, fmt.Errorf("host %s generation %d: %w: register again", id, gen, ErrLeaseLost)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("renew lease of %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE hosts SET free_cpus = `+freeCPUs+`, free_memory_mb = $3, free_disk_mb = $4 WHERE id = $1`, id, s.overcommit(), free.MemoryMB, free.DiskMB); err != nil {
		return Lease{}, fmt.Errorf("renew lease of %s: %w", id, err)
	}
	return l, tx.Commit()
}

// Hosts lists every host with its lease, by name.
func (s *Store) Hosts(ctx context.Context) ([]HostStatus, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT h.id, h.name, h.addr, h.underlay_ip, h.cpus, h.memory_mb, h.disk_mb, h.free_cpus, h.free_memory_mb, h.free_disk_mb,
			l.generation, l.expires_at, l.renewed_at, l.expires_at > now()
		FROM hosts h JOIN host_leases l ON l.host_id = h.id ORDER BY h.name, h.id`)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []HostStatus
	for rows.Next() {
		var h HostStatus
		if err := rows.Scan(&h.ID, &h.Name, &h.Addr, &h.UnderlayIP, &h.Size.CPUs, &h.Size.MemoryMB, &h.Size.DiskMB, &h.Free.CPUs, &h.Free.MemoryMB, &h.Free.DiskMB,
			&h.Generation, &h.Expires, &h.Renewed, &h.Live); err != nil {
			return nil, fmt.Errorf("list hosts: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// hostAPI is how the control plane reaches host id's API: its address,
// its API token and whether its lease is live.
type hostAPI struct {
	ID, Name, Addr, Token string
	Live                  bool
}

func (s *Store) hostAPI(ctx context.Context, id string) (hostAPI, error) {
	h := hostAPI{ID: id}
	err := s.db.QueryRowContext(ctx, `SELECT h.name, h.addr, h.api_token, l.expires_at > now()
		FROM hosts h JOIN host_leases l ON l.host_id = h.id WHERE h.id = $1`, id).Scan(&h.Name, &h.Addr, &h.Token, &h.Live)
	if errors.Is(err, sql.ErrNoRows) {
		return h, fmt.Errorf("host %s is not registered: %w", id, errdefs.ErrNotFound)
	}
	if err != nil {
		return h, fmt.Errorf("host %s: %w", id, err)
	}
	return h, nil
}
