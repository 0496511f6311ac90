package controlplane

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// MachineSpec is what placement needs to know of a machine.
type MachineSpec struct {
	App      string `json:"app"`
	Name     string `json:"name"`
	CPUs     int    `json:"cpus"`
	MemoryMB int64  `json:"memory_mb"`
	Volume   string `json:"volume,omitempty"` // a volume of the app it mounts: it runs where the volume is
	// Restart is the machine's restart policy (no, always, on-failure):
	// only machines with one other than "no" are placed again when their
	// host is lost ("" counts as one: a bare placement record).
	Restart string `json:"restart,omitempty"`
	// Config is what the host creates the machine with (nil: a
	// placement record only, nothing for a host to boot).
	Config *types.Config `json:"config,omitempty"`
}

// Placement is where a machine (or a volume) was placed: the host, its
// API address, and the host's lease generation at that moment (a host
// runs a machine only under a generation at least this one).
type Placement struct {
	ID         string `json:"id"`
	HostID     string `json:"host_id"`
	HostAddr   string `json:"host_addr"`
	Generation int64  `json:"generation"`
}

var resourceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// candidate is a live host during placement, its row locked.
type candidate struct {
	id, addr         string
	gen              int64
	cpus             int // free machine CPUs (overcommitted)
	hostCPUs         int // the host's own: no machine gets more
	memoryMB, diskMB int64
	appMachines      int
}

// liveHosts locks every host with a live lease (in id order, so
// concurrent placements queue instead of deadlocking) and returns them
// with how many machines of app each runs.
func liveHosts(ctx context.Context, tx *sql.Tx, appID string) ([]candidate, error) {
	rows, err := tx.QueryContext(ctx, `SELECT h.id, h.addr, l.generation, h.free_cpus, h.cpus, h.free_memory_mb, h.free_disk_mb,
			(SELECT count(*) FROM machines m WHERE m.host_id = h.id AND m.app_id = $1)
		FROM hosts h JOIN host_leases l ON l.host_id = h.id
		WHERE l.expires_at > now() ORDER BY h.id FOR UPDATE OF h`, appID)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []candidate
	for rows.Next() {
		var c candidate
		if err := rows.Scan(&c.id, &c.addr, &c.gen, &c.cpus, &c.hostCPUs, &c.memoryMB, &c.diskMB, &c.appMachines); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// machineID is a new machine's ID, in the shape a host's machine IDs have
// (machine.ValidID): the machine keeps it on whichever host runs it.
func machineID() string {
	b := make([]byte, 7)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newID(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// appID returns the id of app, creating it.
func appID(ctx context.Context, tx *sql.Tx, app string) (string, error) {
	if !resourceName.MatchString(app) {
		return "", fmt.Errorf("app name %q: use [a-z0-9_-], 1-63 characters: %w", app, errdefs.ErrInvalidArgument)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO apps (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, newID("a-"), app); err != nil {
		return "", err
	}
	var id string
	return id, tx.QueryRowContext(ctx, `SELECT id FROM apps WHERE name = $1`, app).Scan(&id)
}

// CreateVolume gives app's volume name (sizeMB) a home: the live host
// with the most free disk that fits it. A volume never moves; machines
// that mount it are placed on its home.
func (s *Store) CreateVolume(ctx context.Context, app, name string, sizeMB int64) (Placement, error) {
	if !resourceName.MatchString(name) || sizeMB <= 0 {
		return Placement{}, fmt.Errorf("volume %q: a name of [a-z0-9_-] (1-63) and a size are required: %w", name, errdefs.ErrInvalidArgument)
	}
	return s.inTx(ctx, "create volume "+app+"/"+name, func(tx *sql.Tx) (Placement, error) {
		aid, err := appID(ctx, tx, app)
		if err != nil {
			return Placement{}, err
		}
		hosts, err := liveHosts(ctx, tx, aid)
		if err != nil {
			return Placement{}, err
		}
		sort.SliceStable(hosts, func(i, j int) bool { return hosts[i].diskMB > hosts[j].diskMB })
		if len(hosts) == 0 || hosts[0].diskMB < sizeMB {
			return Placement{}, fmt.Errorf("no live host has %d MiB of disk free for volume %s: %w", sizeMB, name, errdefs.ErrUnavailable)
		}
		h := hosts[0]
		p := Placement{ID: newID("v-"), HostID: h.id, HostAddr: h.addr, Generation: h.gen}
		if _, err := tx.ExecContext(ctx, `INSERT INTO volumes (id, app_id, name, size_mb, home_host_id) VALUES ($1, $2, $3, $4, $5)`,
			p.ID, aid, name, sizeMB, h.id); err != nil {
			return Placement{}, alreadyExists(err, "volume "+app+"/"+name)
		}
		_, err = tx.ExecContext(ctx, `UPDATE hosts SET free_disk_mb = free_disk_mb - $2 WHERE id = $1`, h.id, sizeMB)
		return p, err
	})
}

// PlaceMachine records a machine's desired state and chooses its host, in
// one transaction over the locked live hosts, so concurrent placements
// never overbook one: a machine with a volume goes to the volume's home
// (or fails when that host is lost or full: the data is only there);
// otherwise, among live hosts with the CPUs and memory free, the one with
// the most memory free after placing it, ties to the one running fewest
// machines of the app. The host's free capacity is reserved at once.
func (s *Store) PlaceMachine(ctx context.Context, m MachineSpec) (Placement, error) {
	if !resourceName.MatchString(m.Name) || m.CPUs <= 0 || m.MemoryMB <= 0 {
		return Placement{}, fmt.Errorf("machine %q: a name of [a-z0-9_-] (1-63), cpus and memory_mb are required: %w", m.Name, errdefs.ErrInvalidArgument)
	}
	return s.inTx(ctx, "place machine "+m.App+"/"+m.Name, func(tx *sql.Tx) (Placement, error) {
		aid, err := appID(ctx, tx, m.App)
		if err != nil {
			return Placement{}, err
		}
		hosts, err := liveHosts(ctx, tx, aid)
		if err != nil {
			return Placement{}, err
		}
		fits := func(c candidate) bool { return c.fits(m.CPUs, m.MemoryMB) }
		var chosen *candidate
		var volumeID sql.NullString
		if m.Volume != "" {
			var home string
			err := tx.QueryRowContext(ctx, `SELECT id, home_host_id FROM volumes WHERE app_id = $1 AND name = $2`, aid, m.Volume).Scan(&volumeID, &home)
			if errors.Is(err, sql.ErrNoRows) {
				return Placement{}, fmt.Errorf("app %s has no volume %s: create it first: %w", m.App, m.Volume, errdefs.ErrNotFound)
			}
			if err != nil {
				return Placement{}, err
			}
			for i := range hosts {
				if hosts[i].id == home {
					chosen = &hosts[i]
				}
			}
			switch {
			case chosen == nil:
				return Placement{}, fmt.Errorf("volume %s lives on host %s, whose lease has expired: the machine can only run there; it waits for that host: %w", m.Volume, home, errdefs.ErrUnavailable)
			case !fits(*chosen):
				return Placement{}, fmt.Errorf("volume %s lives on host %s, which has %d CPUs and %d MiB free (the machine needs %d and %d): %w",
					m.Volume, home, chosen.cpus, chosen.memoryMB, m.CPUs, m.MemoryMB, errdefs.ErrUnavailable)
			}
		} else {
			if chosen = best(hosts, m.CPUs, m.MemoryMB); chosen == nil {
				return Placement{}, fmt.Errorf("no live host has %d CPUs and %d MiB of memory free (%d live hosts): %w", m.CPUs, m.MemoryMB, len(hosts), errdefs.ErrUnavailable)
			}
		}
		p := Placement{ID: machineID(), HostID: chosen.id, HostAddr: chosen.addr, Generation: chosen.gen}
		var cfg []byte
		if m.Config != nil {
			if cfg, err = json.Marshal(m.Config); err != nil {
				return Placement{}, err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO machines (id, app_id, name, cpus, memory_mb, volume_id, host_id, placed_generation, config, restart_policy)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, p.ID, aid, m.Name, m.CPUs, m.MemoryMB, volumeID, chosen.id, chosen.gen, cfg, m.Restart); err != nil {
			return Placement{}, alreadyExists(err, "machine "+m.App+"/"+m.Name)
		}
		_, err = tx.ExecContext(ctx, `UPDATE hosts SET free_cpus = free_cpus - $2, free_memory_mb = free_memory_mb - $3 WHERE id = $1`, chosen.id, m.CPUs, m.MemoryMB)
		return p, err
	})
}

// fits reports whether a machine of cpus and memMB fits on c: the CPUs
// and memory are free, and c has at least cpus CPUs of its own.
func (c candidate) fits(cpus int, memMB int64) bool {
	return c.cpus >= cpus && c.hostCPUs >= cpus && c.memoryMB >= memMB
}

// best is the host a machine of cpus and memMB goes to: among those it
// fits, the one with the most memory free, ties to the one running fewest
// machines of the app; nil when it fits none.
func best(hosts []candidate, cpus int, memMB int64) *candidate {
	var chosen *candidate
	for i := range hosts {
		c := &hosts[i]
		if !c.fits(cpus, memMB) {
			continue
		}
		if chosen == nil || c.memoryMB > chosen.memoryMB || (c.memoryMB == chosen.memoryMB && c.appMachines < chosen.appMachines) {
			chosen = c
		}
	}
	return chosen
}

// inTx runs fn in a transaction and commits when it succeeds.
func (s *Store) inTx(ctx context.Context, what string, fn func(*sql.Tx) (Placement, error)) (Placement, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Placement{}, fmt.Errorf("%s: %w", what, err)
	}
	defer func() { _ = tx.Rollback() }()
	p, err := fn(tx)
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return Placement{}, fmt.Errorf("%s: %w", what, err)
	}
	return p, nil
}

// alreadyExists turns a unique violation into errdefs.ErrAlreadyExists.
func alreadyExists(err error, what string) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("%s exists: %w", what, errdefs.ErrAlreadyExists)
	}
	return err
}
