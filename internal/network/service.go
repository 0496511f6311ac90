package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/network/resolver"
)

// Service is the daemon's networks: their records, bridges, resolvers and
// kernel rules, and every machine's endpoints on them. Its methods are the
// API other packages (the daemon's machines, the Machines API, compose, the
// Docker API) use.
type Service struct {
	cfg       Config
	o         options
	db        *bbolt.DB
	ns        ns
	log       *slog.Logger
	upstreams []string

	mu        sync.Mutex // serialises every change
	hostDone  bool       // setupHost ran
	resolvers map[string]*resolver.Server
	proxies   map[proxyKey]*proxy
	watches   []*gatewayWatch
	remote    map[string][]resolver.Record // overlay machines on other hosts, by network ID (overlay.go)
	// overlayKey and overlayAt are the overlays last applied, and when.
	overlayKey string
	overlayAt  time.Time
	// appOverlay and underlay: an app network made before the first sync
	// takes the control plane's subnets (overlay.go).
	appOverlay AppOverlay
	underlay   netip.Addr
}

// Open opens the networks recorded in db and makes the kernel match them
// (idempotently: a restarted daemon calls it again and keeps every bridge,
// TAP, address and rule): bridges with their gateway addresses, ferry's
// nftables tables, one resolver per network. With no network recorded it
// touches nothing; the default network is created with the first machine
// that needs it.
func Open(ctx context.Context, db *bbolt.DB, cfg Config, opts ...Option) (*Service, error) {
	o := options{logger: slog.New(slog.DiscardHandler), resolvConf: "/etc/resolv.conf"}
	for _, f := range opts {
		f(&o)
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, o: o, db: db, ns: ns{cfg.NetNS}, log: o.logger, upstreams: cfg.Upstreams,
		resolvers: map[string]*resolver.Server{}, proxies: map[proxyKey]*proxy{}}
	if len(s.upstreams) == 0 {
		s.upstreams = hostUpstreams(o.resolvConf)
	}
	if err := db.Update(initBuckets); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	nets, err := s.networks()
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	if len(nets) == 0 {
		return s, nil
	}
	if err := s.setupHost(); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	for _, n := range nets {
		if err := s.ensureBridge(n); err != nil {
			return nil, fmt.Errorf("network %s: %w", n.Name, err)
		}
	}
	if err := s.apply(ctx); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	for _, n := range nets {
		if err := s.startResolver(n); err != nil {
			s.closeResolvers()
			return nil, fmt.Errorf("network %s: %w", n.Name, err)
		}
	}
	var recs []*machineRecord
	if err := db.View(func(tx *bbolt.Tx) (err error) {
		recs, err = allMachines(tx)
		return err
	}); err != nil {
		s.closeResolvers()
		return nil, fmt.Errorf("network: %w", err)
	}
	for _, r := range recs {
		s.startProxies(r)
	}
	return s, nil
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// Close stops the resolvers and [::1] proxies (the kernel side stays:
// published ports and machine-to-machine traffic keep working while the
// daemon is away).
func (s *Service) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeResolvers()
	s.stopProxies("")
}

func (s *Service) networks() ([]*Network, error) {
	var nets []*Network
	err := s.db.View(func(tx *bbolt.Tx) (err error) {
		nets, err = allNets(tx)
		return err
	})
	return nets, err
}

// rules reads the whole desired state from the database.
func (s *Service) rules() (Rules, error) {
	r := Rules{Table: s.cfg.Table, AllowLinkLocal: s.cfg.AllowLinkLocal, Served: s.cfg.Served}
	err := s.db.View(func(tx *bbolt.Tx) error {
		nets, err := allNets(tx)
		if err != nil {
			return err
		}
		r.Networks = nets
		recs, err := allMachines(tx)
		for _, m := range recs {
			r.Endpoints = append(r.Endpoints, m.endpoints()...)
			r.Ports = append(r.Ports, m.portRules()...)
		}
		return err
	})
	return r, err
}

// apply loads the rules for the recorded state: one nft transaction that
// replaces ferry's tables.
func (s *Service) apply(ctx context.Context) error {
	r, err := s.rules()
	if err != nil {
		return err
	}
	if _, err := s.ns.run(ctx, r.Script(), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return nil
}

// applyMachine adds (verb "add") or deletes ("delete") one machine's
// elements: a cost that does not grow with the number of machines. Should
// the kernel not hold what the records say (an element missing, a table
// flushed by hand) it falls back to the whole ruleset.
func (s *Service) applyMachine(ctx context.Context, verb string, rec *machineRecord) error {
	if _, err := s.ns.run(ctx, ElementScript(s.cfg.Table, verb, rec.endpoints(), rec.portRules()), "nft", "-f", "-"); err != nil {
		s.log.Debug("network: element update failed, replacing the ruleset", "verb", verb, "machine", rec.MachineID, "err", err)
		return s.apply(ctx)
	}
	return nil
}

// startResolver opens n's resolver on its gateways (UDP and TCP port 53,
// sockets made in the network's namespace) with the current records.
func (s *Service) startResolver(n *Network) error {
	if _, ok := s.resolvers[n.ID]; ok {
		return s.refreshDNS(n.ID)
	}
	gws := []string{n.Gateway.String()}
	if n.IPv6() {
		gws = append(gws, n.Gateway6.String())
	}
	var pcs []net.PacketConn
	var ls []net.Listener
	closeAll := func() {
		for _, c := range pcs {
			_ = c.Close()
		}
		for _, l := range ls {
			_ = l.Close()
		}
	}
	err := s.ns.do(func() error {
		for _, gw := range gws {
			addr := net.JoinHostPort(gw, "53")
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				return err
			}
			pcs = append(pcs, pc)
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			ls = append(ls, l)
		}
		return nil
	})
	if err != nil {
		closeAll()
		return fmt.Errorf("dns on %v: %w", gws, err)
	}
	srv := resolver.New(resolver.Config{Upstreams: slices.Clone(s.upstreams), NoForward: n.Internal, Logger: s.log.With("network", n.Name)})
	s.resolvers[n.ID] = srv
	if err := s.refreshDNS(n.ID); err != nil {
		closeAll()
		delete(s.resolvers, n.ID)
		return err
	}
	srv.Serve(pcs, ls)
	return nil
}

func (s *Service) stopResolver(netID string) {
	if srv, ok := s.resolvers[netID]; ok {
		srv.Close()
		delete(s.resolvers, netID)
	}
}

func (s *Service) closeResolvers() {
	for id := range s.resolvers {
		s.stopResolver(id)
	}
}

// refreshDNS gives the resolvers of netIDs (every one when none is given)
// the records of the machines now on them, and each machine on several
// networks a view of its other networks' machines on each of its
// networks' resolvers (its resolv.conf names only the first).
func (s *Service) refreshDNS(netIDs ...string) error {
	var ms []*machineRecord
	if err := s.db.View(func(tx *bbolt.Tx) (err error) {
		ms, err = allMachines(tx)
		return err
	}); err != nil {
		return err
	}
	recs := map[string][]resolver.Record{}
	for _, m := range ms {
		for _, e := range m.endpoints() {
			recs[e.NetworkID] = append(recs[e.NetworkID], resolver.Record{
				Name: e.Name, App: e.App, Aliases: e.Aliases, IPv4: e.IPv4.Addr(), IPv6: e.IPv6.Addr()})
		}
	}
	for id, rr := range s.remote {
		recs[id] = append(recs[id], rr...)
	}
	views := map[string]map[netip.Addr][]resolver.Record{}
	for _, m := range ms {
		if len(m.Endpoints) < 2 {
			continue
		}
		for _, e := range m.Endpoints {
			var more []resolver.Record
			for _, o := range m.Endpoints {
				if o.NetworkID != e.NetworkID {
					more = append(more, recs[o.NetworkID]...)
				}
			}
			if views[e.NetworkID] == nil {
				views[e.NetworkID] = map[netip.Addr][]resolver.Record{}
			}
			for _, a := range []netip.Addr{e.IPv4.Addr(), e.IPv6.Addr()} {
				if a.IsValid() {
					views[e.NetworkID][a] = more
				}
			}
		}
	}
	if len(netIDs) == 0 {
		for id := range s.resolvers {
			netIDs = append(netIDs, id)
		}
	}
	for _, id := range netIDs {
		if srv, ok := s.resolvers[id]; ok {
			srv.SetRecords(recs[id])
			srv.SetViews(views[id])
		}
	}
	return nil
}

// Teardown removes every network's bridge, resolver and ferry's tables
// (uninstall, tests). Records stay; Release or Reconcile machines first.
func (s *Service) Teardown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeResolvers()
	s.stopProxies("")
	var errs []error
	for _, fam := range []string{"inet", "bridge"} {
		script := fmt.Sprintf("add table %[1]s %[2]s\ndelete table %[1]s %[2]s\n", fam, s.cfg.Table)
		if _, err := s.ns.run(ctx, script, "nft", "-f", "-"); err != nil {
			errs = append(errs, err)
		}
	}
	nets, err := s.networks()
	errs = append(errs, err)
	for _, n := range nets {
		errs = append(errs, s.deleteLink(n.Bridge))
	}
	return errors.Join(errs...)
}

func notFound(ref string) error {
	return fmt.Errorf("network %s not found (list them with ferry network ls; create it with ferry network create %s): %w",
		ref, ref, errdefs.ErrNotFound)
}
