package controlplane

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/network"
)

// Cross-host private networks (6PN, docs/scale-out.md): the control plane
// gives each overlay network a VNI, an IPv4 /16 of OverlayPool and an IPv6
// ULA /64, and each host on it a /24 of the /16 (its gateway and the
// addresses it hands out), so no two hosts allocate one address. Every app
// has one, named after it; more are made with POST /v1/networks. Hosts
// report their machines on the overlays and get back, in one exchange
// (SyncOverlay), every overlay with their own part and the live peers'
// underlay addresses and machines. The default app's network stays on
// each host (ferry0, the daemon's --subnet): an app spans hosts.

// OverlayPool is where overlay networks' IPv4 subnets come from: one /16
// each (64 networks), apart from the single-host pools (10.213/22,
// 10.214/15).
var OverlayPool = netip.MustParsePrefix("10.128.0.0/10")

// overlayHostBits is the length of a host's range of an overlay's /16:
// 254 hosts of 253 machines each per network.
const overlayHostBits = 24

const migrationOverlay = `CREATE TABLE overlay_networks (
		name    TEXT PRIMARY KEY,
		app     TEXT NOT NULL DEFAULT '',
		vni     INTEGER NOT NULL UNIQUE CHECK (vni BETWEEN 1 AND 16777215),
		subnet  TEXT NOT NULL UNIQUE,
		subnet6 TEXT NOT NULL UNIQUE
	);
	CREATE TABLE overlay_hosts (
		network  TEXT NOT NULL REFERENCES overlay_networks(name) ON DELETE CASCADE,
		host_id  TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
		block    INTEGER NOT NULL CHECK (block BETWEEN 1 AND 254),
		underlay TEXT NOT NULL,
		PRIMARY KEY (network, host_id),
		UNIQUE (network, block)
	);
	CREATE TABLE overlay_machines (
		network TEXT NOT NULL,
		host_id TEXT NOT NULL,
		name    TEXT NOT NULL,
		machine JSONB NOT NULL,
		PRIMARY KEY (network, host_id, name),
		FOREIGN KEY (network, host_id) REFERENCES overlay_hosts(network, host_id) ON DELETE CASCADE
	);`

// overlayLock serialises the allocation of VNIs, subnets and host ranges
// across replicas (a transaction-scoped advisory lock).
const overlayLock = 727171

// OverlayNetwork is an overlay as the control plane records it.
type OverlayNetwork struct {
	Name    string       `json:"name"`
	App     string       `json:"app,omitempty"`
	VNI     uint32       `json:"vni"`
	Subnet  netip.Prefix `json:"subnet"`
	Subnet6 netip.Prefix `json:"subnet6"`
}

// OverlayReport is what a host says in a SyncOverlay: its underlay address
// (VXLAN's source) and its machines on each overlay, by network name.
type OverlayReport struct {
	Underlay netip.Addr                         `json:"underlay"`
	Machines map[string][]network.RemoteMachine `json:"machines,omitempty"`
}

// CreateNetwork records overlay network name (for app, "" for none) with
// a new VNI and subnets; an existing one is returned as it is.
func (s *Store) CreateNetwork(ctx context.Context, name, app string) (OverlayNetwork, error) {
	if !resourceName.MatchString(name) {
		return OverlayNetwork{}, fmt.Errorf("network name %q: use [a-z0-9_-], 1-63 characters: %w", name, errdefs.ErrInvalidArgument)
	}
	return s.inTxNet(ctx, "create network "+name, func(tx *sql.Tx) (OverlayNetwork, error) {
		return ensureNetwork(ctx, tx, name, app)
	})
}

func (s *Store) inTxNet(ctx context.Context, what string, fn func(*sql.Tx) (OverlayNetwork, error)) (OverlayNetwork, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return OverlayNetwork{}, fmt.Errorf("%s: %w", what, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, overlayLock); err != nil {
		return OverlayNetwork{}, fmt.Errorf("%s: %w", what, err)
	}
	n, err := fn(tx)
	if err != nil {
		return OverlayNetwork{}, fmt.Errorf("%s: %w", what, err)
	}
	return n, tx.Commit()
}

// overlayNetworks lists the recorded overlays, by name.
func overlayNetworks(ctx context.Context, tx *sql.Tx) ([]OverlayNetwork, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name, app, vni, subnet, subnet6 FROM overlay_networks ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []OverlayNetwork
	for rows.Next() {
		var n OverlayNetwork
		var sub, sub6 string
		if err := rows.Scan(&n.Name, &n.App, &n.VNI, &sub, &sub6); err != nil {
			return nil, err
		}
		if n.Subnet, err = netip.ParsePrefix(sub); err != nil {
			return nil, err
		}
		if n.Subnet6, err = netip.ParsePrefix(sub6); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// ensureNetwork returns overlay name, creating it (under overlayLock) with
// the next VNI, the first free /16 of OverlayPool and a random ULA /64.
func ensureNetwork(ctx context.Context, tx *sql.Tx, name, app string) (OverlayNetwork, error) {
	nets, err := overlayNetworks(ctx, tx)
	if err != nil {
		return OverlayNetwork{}, err
	}
	var vni uint32
	used := map[netip.Prefix]bool{}
	for _, n := range nets {
		if n.Name == name {
			return n, nil
		}
		vni = max(vni, n.VNI)
		used[n.Subnet] = true
	}
	n := OverlayNetwork{Name: name, App: app, VNI: vni + 1}
	base := OverlayPool.Masked().Addr().As4()
	for i := 0; i < 1<<(16-OverlayPool.Bits()); i++ {
		b := base
		b[1] += byte(i)
		if p := netip.PrefixFrom(netip.AddrFrom4(b), 16); !used[p] {
			n.Subnet = p
			break
		}
	}
	if !n.Subnet.IsValid() {
		return OverlayNetwork{}, fmt.Errorf("the overlay pool %s has no /16 left for network %s: %w", OverlayPool, name, errdefs.ErrUnavailable)
	}
	var u [16]byte
	u[0] = 0xfd
	if _, err := rand.Read(u[1:6]); err != nil {
		return OverlayNetwork{}, err
	}
	binary.BigEndian.PutUint16(u[6:], uint16(n.VNI))
	n.Subnet6 = netip.PrefixFrom(netip.AddrFrom16(u), 64)
	_, err = tx.ExecContext(ctx, `INSERT INTO overlay_networks (name, app, vni, subnet, subnet6) VALUES ($1, $2, $3, $4, $5)`,
		n.Name, n.App, n.VNI, n.Subnet.String(), n.Subnet6.String())
	return n, err
}

// hostPart is host block's range of n's subnet, its gateway (the range's
// first address) and the gateway's IPv6 twin.
func hostPart(n OverlayNetwork, block int) (rng netip.Prefix, gw, gw6 netip.Addr) {
	b := n.Subnet.Addr().As4()
	b[2], b[3] = byte(block), 1
	gw = netip.AddrFrom4(b)
	rng = netip.PrefixFrom(gw, overlayHostBits).Masked()
	u := n.Subnet6.Addr().As16()
	u[14], u[15] = byte(block), 1
	return rng, gw, netip.AddrFrom16(u)
}

// SyncOverlay records host id's underlay address (hosts.underlay_ip) and machines on the
// overlays (replacing what it reported before), gives it a range of every
// overlay it has none of yet (every app's network is made on the way), and
// returns every overlay with the host's part and its live peers — the
// other hosts on it whose leases have not expired — with their machines.
func (s *Store) SyncOverlay(ctx context.Context, id string, rep OverlayReport) ([]network.Overlay, error) {
	if !rep.Underlay.IsValid() {
		return nil, fmt.Errorf("overlay sync of %s: the host's underlay address is missing: %w", id, errdefs.ErrInvalidArgument)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("overlay sync of %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()
	out, err := syncOverlay(ctx, tx, id, rep)
	if err != nil {
		return nil, fmt.Errorf("overlay sync of %s: %w", id, err)
	}
	return out, tx.Commit()
}

func syncOverlay(ctx context.Context, tx *sql.Tx, id string, rep OverlayReport) ([]network.Overlay, error) {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, overlayLock); err != nil {
		return nil, err
	}
	var known bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM hosts WHERE id = $1)`, id).Scan(&known); err != nil {
		return nil, err
	}
	if !known {
		return nil, fmt.Errorf("host %s is not registered (POST /v1/hosts first): %w", id, errdefs.ErrNotFound)
	}
	rows, err := tx.QueryContext(ctx, `SELECT name FROM apps WHERE name <> 'default' AND name NOT IN (SELECT name FROM overlay_networks) ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var apps []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			_ = rows.Close()
			return nil, err
		}
		apps = append(apps, a)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	for _, a := range apps {
		if _, err := ensureNetwork(ctx, tx, a, a); err != nil {
			return nil, err
		}
	}
	nets, err := overlayNetworks(ctx, tx)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM overlay_machines WHERE host_id = $1`, id); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE hosts SET underlay_ip = $2 WHERE id = $1`, id, rep.Underlay.String()); err != nil {
		return nil, err
	}
	var out []network.Overlay
	for _, n := range nets {
		var block int
		err := tx.QueryRowContext(ctx, `SELECT block FROM overlay_hosts WHERE network = $1 AND host_id = $2`, n.Name, id).Scan(&block)
		if err == sql.ErrNoRows {
			block, err = newBlock(ctx, tx, n.Name, id)
		}
		if err != nil {
			return nil, fmt.Errorf("network %s: a range for the host: %w", n.Name, err)
		}
		rng, gw, gw6 := hostPart(n, block)
		for _, m := range rep.Machines[n.Name] {
			if !rng.Contains(m.IPv4) {
				continue // not this host's to announce
			}
			b, err := json.Marshal(m)
			if err != nil {
				return nil, err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO overlay_machines (network, host_id, name, machine) VALUES ($1, $2, $3, $4)
				ON CONFLICT DO NOTHING`, n.Name, id, m.Name, b); err != nil {
				return nil, err
			}
		}
		ov := network.Overlay{Network: n.Name, App: n.App, VNI: n.VNI, Subnet: n.Subnet, Subnet6: n.Subnet6,
			Gateway: gw, Gateway6: gw6, IPRange: rng}
		if ov.Peers, err = overlayPeers(ctx, tx, n.Name, id); err != nil {
			return nil, err
		}
		out = append(out, ov)
	}
	return out, nil
}

// OverlayReclaimAfter is how long a host's lease must have been expired
// before a network that has no /24 left gives that host's to another one
// (the host, should it return, then finds its network's range changed and
// is told to remove it).
var OverlayReclaimAfter = time.Hour

// newBlock gives host id the lowest free /24 of network, reclaiming those
// of hosts whose leases expired OverlayReclaimAfter ago when none is free.
func newBlock(ctx context.Context, tx *sql.Tx, network, id string) (int, error) {
	for reclaimed := false; ; reclaimed = true {
		var block int
		err := tx.QueryRowContext(ctx, `INSERT INTO overlay_hosts (network, host_id, block)
			SELECT $1, $2, b FROM generate_series(1, 254) b
			WHERE b NOT IN (SELECT block FROM overlay_hosts WHERE network = $1) ORDER BY b LIMIT 1 RETURNING block`,
			network, id).Scan(&block)
		if err != sql.ErrNoRows || reclaimed {
			if err == sql.ErrNoRows {
				return 0, fmt.Errorf("all 254 host ranges are taken by hosts whose leases expired less than %s ago or are live: %w",
					OverlayReclaimAfter, errdefs.ErrUnavailable)
			}
			return block, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM overlay_hosts o USING host_leases l
			WHERE o.network = $1 AND l.host_id = o.host_id AND l.expires_at < now() - $2 * interval '1 millisecond'`,
			network, OverlayReclaimAfter.Milliseconds()); err != nil {
			return 0, err
		}
	}
}

// overlayPeers are the hosts on network other than self with live leases,
// with their machines there.
func overlayPeers(ctx context.Context, tx *sql.Tx, name, self string) ([]network.Peer, error) {
	rows, err := tx.QueryContext(ctx, `SELECT o.host_id, h.underlay_ip, m.machine
		FROM overlay_hosts o JOIN host_leases l ON l.host_id = o.host_id JOIN hosts h ON h.id = o.host_id
		LEFT JOIN overlay_machines m ON m.network = o.network AND m.host_id = o.host_id
		WHERE o.network = $1 AND o.host_id <> $2 AND l.expires_at > now()
		ORDER BY o.host_id, m.name`, name, self)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []network.Peer
	for rows.Next() {
		var host, under string
		var raw []byte
		if err := rows.Scan(&host, &under, &raw); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].Host != host {
			a, err := netip.ParseAddr(under)
			if err != nil {
				return nil, err
			}
			out = append(out, network.Peer{Host: host, Underlay: a})
		}
		if raw != nil {
			var m network.RemoteMachine
			if err := json.Unmarshal(raw, &m); err != nil {
				return nil, err
			}
			p := &out[len(out)-1]
			p.Machines = append(p.Machines, m)
		}
	}
	return out, rows.Err()
}

// Networks lists the overlay networks.
func (s *Store) Networks(ctx context.Context) ([]OverlayNetwork, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	nets, err := overlayNetworks(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	return slices.Clip(nets), nil
}
