package controlplane

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// Machine is a machine's desired state and placement.
type Machine struct {
	ID               string `json:"id"`
	App              string `json:"app"`
	Name             string `json:"name"`
	CPUs             int    `json:"cpus"`
	MemoryMB         int64  `json:"memory_mb"`
	Volume           string `json:"volume,omitempty"`
	Desired          string `json:"desired"`
	HostID           string `json:"host_id"`
	PlacedGeneration int64  `json:"placed_generation"`
	Restart          string `json:"restart,omitempty"`
	// Config is what the host creates the machine with (nil: a bare
	// placement record, nothing to boot).
	Config *types.Config `json:"config,omitempty"`
}

// HostMachines is the desired set of host id: the machines placed on it.
// A host returning after losing its lease finds the machines moved away
// missing here and stops its copies.
func (s *Store) HostMachines(ctx context.Context, id string) ([]Machine, error) {
	return s.machines(ctx, `WHERE m.host_id = $1`, id)
}

// Machines lists every machine with its placement, by app and name.
func (s *Store) Machines(ctx context.Context) ([]Machine, error) {
	return s.machines(ctx, ``)
}

func (s *Store) machines(ctx context.Context, where string, args ...any) ([]Machine, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT m.id, a.name, m.name, m.cpus, m.memory_mb, COALESCE(v.name, ''), m.desired, m.host_id, m.placed_generation,
			m.restart_policy, m.config
		FROM machines m JOIN apps a ON a.id = m.app_id LEFT JOIN volumes v ON v.id = m.volume_id
		`+where+` ORDER BY a.name, m.name`, args...)
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := []Machine{}
	for rows.Next() {
		var m Machine
		var cfg []byte
		if err := rows.Scan(&m.ID, &m.App, &m.Name, &m.CPUs, &m.MemoryMB, &m.Volume, &m.Desired, &m.HostID, &m.PlacedGeneration, &m.Restart, &cfg); err != nil {
			return nil, fmt.Errorf("list machines: %w", err)
		}
		if cfg != nil {
			m.Config = new(types.Config)
			if err := json.Unmarshal(cfg, m.Config); err != nil {
				return nil, fmt.Errorf("machine %s: stored config: %w", m.ID, err)
			}
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Reap places again, on hosts with live leases, the started machines
// with a restart policy (other than "no") of hosts whose lease has expired, each with the new host's generation, and
// returns the new placements. Machines that mount a volume stay: their
// data is on the lost host, they wait for it. A machine no live host fits
// stays where it is until a later Reap. Replicas may reap at once: each
// lost host is handled by one (SKIP LOCKED).
func (s *Store) Reap(ctx context.Context) ([]Placement, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("reap: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	lost, err := stringsOf(tx.QueryContext(ctx, `SELECT host_id FROM host_leases WHERE expires_at <= now() ORDER BY host_id FOR UPDATE SKIP LOCKED`))
	if err != nil {
		return nil, fmt.Errorf("reap: %w", err)
	}
	var moved []Placement
	for _, hid := range lost {
		type orphan struct {
			id, app string
			cpus    int
			mem     int64
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, app_id, cpus, memory_mb FROM machines
			WHERE host_id = $1 AND volume_id IS NULL AND desired = 'started' AND restart_policy <> 'no' ORDER BY id FOR UPDATE`, hid)
		if err != nil {
			return nil, fmt.Errorf("reap %s: %w", hid, err)
		}
		var orphans []orphan
		for rows.Next() {
			var o orphan
			if err := rows.Scan(&o.id, &o.app, &o.cpus, &o.mem); err != nil {
				_ = rows.Close()
				return nil, fmt.Errorf("reap %s: %w", hid, err)
			}
			orphans = append(orphans, o)
		}
		_ = rows.Close()
		for _, o := range orphans {
			hosts, err := liveHosts(ctx, tx, o.app)
			if err != nil {
				return nil, fmt.Errorf("reap %s: %w", hid, err)
			}
			chosen := best(hosts, o.cpus, o.mem)
			if chosen == nil {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE machines SET host_id = $2, placed_generation = $3 WHERE id = $1`, o.id, chosen.id, chosen.gen); err != nil {
				return nil, fmt.Errorf("reap %s: %w", hid, err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE hosts SET free_cpus = free_cpus - $2, free_memory_mb = free_memory_mb - $3 WHERE id = $1`, chosen.id, o.cpus, o.mem); err != nil {
				return nil, fmt.Errorf("reap %s: %w", hid, err)
			}
			moved = append(moved, Placement{ID: o.id, HostID: chosen.id, HostAddr: chosen.addr, Generation: chosen.gen})
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("reap: %w", err)
	}
	return moved, nil
}

func stringsOf(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// reapLoop reaps every interval until ctx ends, once the database has
// answered this replica for ReapGrace: after the control plane (or its
// database) was away for longer than a lease, every lease has expired
// although the hosts are fine, and each host needs a moment to renew (it
// retries at most RetryMax apart) before a lease still expired means a
// host lost; reaping at once would move the machines of every host that
// happened to come back later than the first.
func (s *Server) reapLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	answering := time.Now() // since when the database has answered
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(answering) < s.ReapGrace {
			if err := s.store.db.PingContext(ctx); err != nil {
				answering = time.Now()
			}
			continue
		}
		moved, err := s.store.Reap(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("controlplane reap failed; reaping again once the database has answered for the grace period", "err", err, "grace", s.ReapGrace)
			answering = time.Now()
		}
		for _, p := range moved {
			s.log.Info("machine placed again after its host's lease expired", "machine", p.ID, "host", p.HostID, "generation", p.Generation)
			// Boot it on its new host now rather than at that host's
			// next convergence (which remains the fallback).
			go func() {
				bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				defer cancel()
				m, err := s.store.machineByID(bctx, p.ID)
				if err != nil || m.Config == nil {
					return
				}
				if _, err := s.boot(bctx, m); err != nil && ctx.Err() == nil {
					s.log.Warn("boot a machine placed again; its host will on converging", "machine", p.ID, "host", p.HostID, "err", err)
				}
			}()
		}
	}
}

// Machine is app's machine ref (its ID or name).
func (s *Store) Machine(ctx context.Context, app, ref string) (Machine, error) {
	ms, err := s.machines(ctx, `WHERE a.name = $1 AND (m.id = $2 OR m.name = $2)`, app, ref)
	if err != nil {
		return Machine{}, err
	}
	if len(ms) == 0 {
		return Machine{}, fmt.Errorf("app %s has no machine %s: %w", app, ref, errdefs.ErrNotFound)
	}
	return ms[0], nil
}

// AppMachines lists the machines of app ("" for every app).
func (s *Store) AppMachines(ctx context.Context, app string) ([]Machine, error) {
	if app == "" {
		return s.Machines(ctx)
	}
	return s.machines(ctx, `WHERE a.name = $1`, app)
}

func (s *Store) machineByID(ctx context.Context, id string) (Machine, error) {
	ms, err := s.machines(ctx, `WHERE m.id = $1`, id)
	if err != nil {
		return Machine{}, err
	}
	if len(ms) == 0 {
		return Machine{}, fmt.Errorf("no machine %s: %w", id, errdefs.ErrNotFound)
	}
	return ms[0], nil
}

// SetDesired records machine id's desired state (started or stopped).
func (s *Store) SetDesired(ctx context.Context, id, desired string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE machines SET desired = $2 WHERE id = $1`, id, desired); err != nil {
		return fmt.Errorf("machine %s desired %s: %w", id, desired, err)
	}
	return nil
}

// RemoveMachine deletes machine id's record and gives its host back the
// capacity it reserved; the host destroys its copy when it next
// converges, if it still has one.
func (s *Store) RemoveMachine(ctx context.Context, id string) error {
	_, err := s.inTx(ctx, "remove machine "+id, func(tx *sql.Tx) (Placement, error) {
		var host string
		var cpus int
		var mem int64
		err := tx.QueryRowContext(ctx, `DELETE FROM machines WHERE id = $1 RETURNING host_id, cpus, memory_mb`, id).Scan(&host, &cpus, &mem)
		if errors.Is(err, sql.ErrNoRows) {
			return Placement{}, nil
		}
		if err != nil {
			return Placement{}, err
		}
		_, err = tx.ExecContext(ctx, `UPDATE hosts SET free_cpus = free_cpus + $2, free_memory_mb = free_memory_mb + $3 WHERE id = $1`, host, cpus, mem)
		return Placement{}, err
	})
	return err
}
