package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Network is the daemon's machine network.
type Network struct {
	cfg Config
	db  *bbolt.DB
	ns  ns
	log *slog.Logger
	dns []string

	mu   sync.Mutex // serialises Attach/Release/Reconcile and guards isUp
	isUp bool       // the bridge, sysctls and table are set up
}

// Attachment is one machine's place on the network: what the VMM needs
// (Tap, File, MAC) and what the guest needs (Addresses, Gateway, DNS, MTU).
// It is the one NIC type of the machine path: internal/machine records it
// and builds the guest's interface and the VMM's NIC from it.
type Attachment struct {
	MachineID string `json:"machine_id,omitempty"`
	Tap       string `json:"tap"`
	MAC       string `json:"mac"`
	// Addresses are the machine's addresses with their subnet's length,
	// e.g. 10.213.0.2/22.
	Addresses []netip.Prefix `json:"addresses"`
	Gateway   netip.Addr     `json:"gateway,omitzero"`
	DNS       []string       `json:"dns,omitempty"`
	MTU       int            `json:"mtu,omitempty"`   // the bridge's; the guest sets it on its interface
	Ports     []Port         `json:"ports,omitempty"` // host ports resolved
	NetNS     string         `json:"netns,omitempty"` // where Tap lives ("" = the daemon's namespace)

	// File is the open TAP: hand it to QEMU (vmm.NIC.File), then Close it
	// once the VMM has started. Firecracker opens Tap by name instead; close
	// File before starting it.
	File *os.File `json:"-"`
}

// IP is the machine's first address, or the zero Addr.
func (a *Attachment) IP() netip.Addr {
	if a == nil || len(a.Addresses) == 0 {
		return netip.Addr{}
	}
	return a.Addresses[0].Addr()
}

// Clone returns a copy sharing no slices with a, without the open TAP.
func (a *Attachment) Clone() *Attachment {
	if a == nil {
		return nil
	}
	out := *a
	out.File = nil
	out.Addresses = slices.Clone(a.Addresses)
	out.DNS = slices.Clone(a.DNS)
	out.Ports = slices.Clone(a.Ports)
	return &out
}

// Open returns the machine network without touching the host: the bridge,
// sysctls and nftables table are set up on the first Attach (and by
// Release and Reconcile when machines are recorded), so a daemon that never
// runs a machine never changes the host's network. db is the daemon's
// database; allocations live in its "network" bucket (ipam.go), which no
// other package reads.
func Open(db *bbolt.DB, cfg Config, opts ...Option) (*Network, error) {
	o := options{logger: slog.New(slog.DiscardHandler), resolvConf: "/etc/resolv.conf"}
	for _, f := range opts {
		f(&o)
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	nw := &Network{cfg: cfg, db: db, ns: ns{cfg.NetNS}, log: o.logger, dns: cfg.DNS}
	if len(nw.dns) == 0 {
		nw.dns = hostDNS(o.resolvConf)
	}
	if err := initBuckets(db); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	return nw, nil
}

// New is Open followed by the host setup (idempotently: a restarted daemon
// calls it again and keeps existing machines' TAPs, addresses and ports):
// the bridge with the gateway address, IP forwarding, route_localnet on the
// bridge, and the nftables table.
func New(ctx context.Context, db *bbolt.DB, cfg Config, opts ...Option) (*Network, error) {
	nw, err := Open(db, cfg, opts...)
	if err != nil {
		return nil, err
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if err := nw.up(ctx); err != nil {
		return nil, err
	}
	return nw, nil
}

// up sets the host side up once (nw.mu held); a failure is retried on the
// next call.
func (nw *Network) up(ctx context.Context) error {
	if nw.isUp {
		return nil
	}
	cfg := nw.cfg
	if err := nw.setupBridge(); err != nil {
		return fmt.Errorf("network: bridge %s: %w", cfg.Bridge, err)
	}
	if err := nw.ns.sysctl("1", "net", "ipv4", "ip_forward"); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	if err := nw.ns.sysctl("1", "net", "ipv4", "conf", cfg.Bridge, "route_localnet"); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	if err := nw.nft(ctx, nw.baseRules()); err != nil {
		return fmt.Errorf("network: nftables: %w", err)
	}
	nw.isUp = true
	return nil
}

// ready sets the host side up for Release and Reconcile (nw.mu held) and
// reports whether they have anything to do: not when nothing was ever set
// up or recorded (then the host is left alone).
func (nw *Network) ready(ctx context.Context) (bool, error) {
	used, err := nw.inUse()
	if err != nil || !used {
		return false, err
	}
	if err := nw.up(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// inUse reports (nw.mu held) whether the host side is set up or machines
// are recorded, i.e. whether Release and Reconcile have anything to do.
func (nw *Network) inUse() (bool, error) {
	if nw.isUp {
		return true, nil
	}
	var used bool
	err := nw.db.View(func(tx *bbolt.Tx) error {
		k, _ := bucket(tx, bucketMachines).Cursor().First()
		used = k != nil
		return nil
	})
	return used, err
}

// Config returns the effective configuration.
func (nw *Network) Config() Config { return nw.cfg }

// DNS returns the guests' nameservers.
func (nw *Network) DNS() []string { return slices.Clone(nw.dns) }

func (nw *Network) setupBridge() error {
	h, err := nw.ns.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(nw.cfg.Bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return err
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: nw.cfg.Bridge}}
		if err := h.LinkAdd(br); err != nil {
			return err
		}
		if link, err = h.LinkByName(nw.cfg.Bridge); err != nil {
			return err
		}
	}
	if _, ok := link.(*netlink.Bridge); !ok {
		return fmt.Errorf("%s exists and is a %s, not a bridge: %w", nw.cfg.Bridge, link.Type(), errdefs.ErrConflict)
	}
	gw := &netlink.Addr{IPNet: &net.IPNet{
		IP:   nw.cfg.Gateway().AsSlice(),
		Mask: net.CIDRMask(nw.cfg.Subnet.Bits(), 32),
	}}
	if err := h.AddrReplace(link, gw); err != nil {
		return fmt.Errorf("address %s: %w", gw, err)
	}
	return h.LinkSetUp(link)
}

// Attach gives a machine its address, TAP and published ports. Conflicting
// or busy host ports and an exhausted subnet are reported before anything
// is created. Calling it again for an attached machine (machine restart,
// daemon restart) keeps its address and recorded ports (ports is then
// ignored), re-creates whatever is missing and re-opens the TAP — which
// fails (EBUSY) while a VMM still holds it.
func (nw *Network) Attach(ctx context.Context, machineID string, ports []Port) (*Attachment, error) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if machineID == "" {
		return nil, fmt.Errorf("network attach: no machine id: %w", errdefs.ErrInvalidArgument)
	}
	if err := nw.up(ctx); err != nil {
		return nil, err
	}
	var existing *record
	if err := nw.db.View(func(tx *bbolt.Tx) (err error) {
		existing, err = getRecord(tx, machineID)
		return err
	}); err != nil {
		return nil, fmt.Errorf("network attach %s: %w", machineID, err)
	}
	var rec *record
	if existing != nil {
		rec = existing
	} else {
		resolved, err := nw.checkPorts(ctx, machineID, ports)
		if err != nil {
			return nil, fmt.Errorf("network attach %s: %w", machineID, err)
		}
		rec = newRecord(machineID, resolved)
		// Record first: a crash from here on leaves a record Release and
		// Reconcile act on, never an untracked TAP or rule.
		if err := nw.db.Update(func(tx *bbolt.Tx) error {
			ip, err := allocate(tx, nw.cfg.Subnet)
			if err != nil {
				return err
			}
			rec.IP = ip
			return putRecord(tx, rec)
		}); err != nil {
			return nil, fmt.Errorf("network attach %s: %w", machineID, err)
		}
	}
	att, err := nw.realise(ctx, rec)
	if err != nil {
		if existing == nil {
			if rerr := nw.release(ctx, rec); rerr != nil {
				nw.log.Warn("network: undo failed attach", "machine", machineID, "err", rerr)
			}
		}
		return nil, fmt.Errorf("network attach %s: %w", machineID, err)
	}
	return att, nil
}

// checkPorts validates requested ports against other machines' and the
// host's, and picks host ports for "-p GUEST".
func (nw *Network) checkPorts(ctx context.Context, machineID string, ports []Port) ([]Port, error) {
	var taken []Port
	if err := nw.db.View(func(tx *bbolt.Tx) error {
		recs, err := allRecords(tx)
		for _, r := range recs {
			if r.MachineID != machineID {
				taken = append(taken, r.ports()...)
			}
		}
		return err
	}); err != nil {
		return nil, err
	}
	var out []Port
	for _, p := range ports {
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
		if p.GuestPort == 0 || (p.Protocol != "tcp" && p.Protocol != "udp") {
			return nil, fmt.Errorf("publish %s: %w", p, errdefs.ErrInvalidArgument)
		}
		if p.HostIP.IsValid() && !p.HostIP.Is4() {
			return nil, fmt.Errorf("publish %s: IPv6 host addresses are not supported yet; publish on an IPv4 address or on all addresses: %w", p, errdefs.ErrInvalidArgument)
		}
		isTaken := func(q Port) bool {
			for _, t := range taken {
				if t.overlaps(q) {
					return true
				}
			}
			return false
		}
		if p.HostPort != 0 && isTaken(p) {
			return nil, fmt.Errorf("publish %s: port already published by another machine: %w", p, errdefs.ErrConflict)
		}
		for _, o := range out {
			if p.HostPort != 0 && o.overlaps(p) {
				return nil, fmt.Errorf("publish %s: host port given twice: %w", p, errdefs.ErrInvalidArgument)
			}
		}
		// A published port is served by DNAT, not bound: a random port the
		// kernel offers may still be another machine's (or an earlier one
		// of this machine's), so ask again.
		busy := func(q Port) bool { return isTaken(q) || slices.ContainsFunc(out, q.overlaps) }
		want := p.HostPort
		hp, err := probePort(nw.ns, p)
		for try := 0; err == nil && want == 0 && busy(withHostPort(p, hp)) && try < 20; try++ {
			hp, err = probePort(nw.ns, p)
		}
		if err != nil {
			return nil, err
		}
		if want == 0 && busy(withHostPort(p, hp)) {
			return nil, fmt.Errorf("publish %s: no free host port found: %w", p, errdefs.ErrUnavailable)
		}
		p.HostPort = hp
		out = append(out, p)
	}
	return out, nil
}

func withHostPort(p Port, port uint16) Port { p.HostPort = port; return p }

// realise makes the record true: TAP on the bridge and up, ports mapped.
func (nw *Network) realise(ctx context.Context, rec *record) (*Attachment, error) {
	f, err := openTap(nw.ns, rec.Tap, nw.cfg.TapOwner)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
		}
	}()
	h, err := nw.ns.handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	tap, err := h.LinkByName(rec.Tap)
	if err != nil {
		return nil, fmt.Errorf("tap %s: %w", rec.Tap, err)
	}
	br, err := h.LinkByName(nw.cfg.Bridge)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", nw.cfg.Bridge, err)
	}
	if err := h.LinkSetMaster(tap, br); err != nil {
		return nil, fmt.Errorf("tap %s to bridge: %w", rec.Tap, err)
	}
	if err := h.LinkSetUp(tap); err != nil {
		return nil, fmt.Errorf("tap %s up: %w", rec.Tap, err)
	}
	if err := nw.deletePorts(ctx, rec.IP); err != nil { // idempotent re-add
		return nil, err
	}
	if err := nw.addPorts(ctx, rec.IP, rec.ports()); err != nil {
		return nil, fmt.Errorf("publish ports: %w", err)
	}
	ok = true
	att := nw.attachment(rec)
	att.MTU, att.File = br.Attrs().MTU, f
	return att, nil
}

// attachment is what rec means for the machine (without the open TAP).
func (nw *Network) attachment(rec *record) *Attachment {
	return &Attachment{
		MachineID: rec.MachineID,
		Tap:       rec.Tap,
		MAC:       rec.MAC,
		Addresses: []netip.Prefix{netip.PrefixFrom(rec.IP, nw.cfg.Subnet.Bits())},
		Gateway:   nw.cfg.Gateway(),
		DNS:       nw.DNS(),
		Ports:     rec.ports(),
		NetNS:     nw.cfg.NetNS,
	}
}

// Release removes everything the machine had: its ports, its TAP, its
// address. Releasing an unknown machine is not an error.
func (nw *Network) Release(ctx context.Context, machineID string) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if ready, err := nw.ready(ctx); !ready {
		return err
	}
	var rec *record
	if err := nw.db.View(func(tx *bbolt.Tx) (err error) {
		rec, err = getRecord(tx, machineID)
		return err
	}); err != nil {
		return fmt.Errorf("network release %s: %w", machineID, err)
	}
	if rec == nil {
		return nw.deleteTap(TapName(machineID)) // a TAP from a crash before the record
	}
	if err := nw.release(ctx, rec); err != nil {
		return fmt.Errorf("network release %s: %w", machineID, err)
	}
	return nil
}

// release undoes rec in reverse order; the record goes last so a failure
// leaves it for the next try.
func (nw *Network) release(ctx context.Context, rec *record) error {
	if err := nw.deletePorts(ctx, rec.IP); err != nil {
		return err
	}
	if err := nw.deleteTap(rec.Tap); err != nil {
		return err
	}
	return nw.db.Update(func(tx *bbolt.Tx) error { return deleteRecord(tx, rec) })
}

func (nw *Network) deleteTap(name string) error {
	h, err := nw.ns.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	if err := h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete tap %s: %w", name, err)
	}
	return nil
}

// Reconcile removes what belongs to no live machine: records (and their
// addresses), ferry TAPs and port mappings of machines not in live.
func (nw *Network) Reconcile(ctx context.Context, live []string) error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if ready, err := nw.ready(ctx); !ready {
		return err
	}
	alive := map[string]bool{}
	keepTaps := map[string]bool{}
	for _, id := range live {
		alive[id] = true
		keepTaps[TapName(id)] = true
	}
	var recs []*record
	if err := nw.db.View(func(tx *bbolt.Tx) (err error) {
		recs, err = allRecords(tx)
		return err
	}); err != nil {
		return fmt.Errorf("network reconcile: %w", err)
	}
	var errs []error
	keepIPs := map[netip.Addr]bool{}
	for _, r := range recs {
		if alive[r.MachineID] {
			keepIPs[r.IP] = true
			continue
		}
		nw.log.Info("network: releasing orphan", "machine", r.MachineID, "ip", r.IP, "tap", r.Tap)
		if err := nw.release(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", r.MachineID, err))
		}
	}
	// TAPs without a record (crash between TAP creation and ... or a lost
	// database).
	h, err := nw.ns.handle()
	if err != nil {
		return fmt.Errorf("network reconcile: %w", err)
	}
	links, err := h.LinkList()
	h.Close()
	if err != nil {
		return fmt.Errorf("network reconcile: %w", err)
	}
	for _, l := range links {
		name := l.Attrs().Name
		if isOurTap(name) && !keepTaps[name] {
			nw.log.Info("network: deleting orphan tap", "tap", name)
			if err := nw.deleteTap(name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Port mappings to addresses no live machine holds.
	elems, err := nw.listPorts(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, e := range elems {
		if !keepIPs[e.IP] {
			if err := nw.nft(ctx, nw.portScript("delete", e.IP, []Port{e.Port})); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("network reconcile: %w", errors.Join(errs...))
	}
	return nil
}

// Attachments lists the recorded machines' attachments (without open TAPs).
func (nw *Network) Attachments() ([]Attachment, error) {
	var out []Attachment
	err := nw.db.View(func(tx *bbolt.Tx) error {
		recs, err := allRecords(tx)
		for _, r := range recs {
			out = append(out, *nw.attachment(r))
		}
		return err
	})
	return out, err
}

// Teardown removes the bridge and the nftables table (for `ferry daemon
// --cleanup-network` and tests). Machines' records stay; call Release or
// Reconcile first.
func (nw *Network) Teardown(ctx context.Context) error {
	var errs []error
	if _, err := nw.ns.run(ctx, "", "nft", "delete", "table", "ip", nw.cfg.Table); err != nil {
		errs = append(errs, err)
	}
	if err := nw.deleteTap(nw.cfg.Bridge); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
