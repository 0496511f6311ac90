package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/network/resolver"
)

func errorsIsConflict(err error) bool { return errors.Is(err, errdefs.ErrConflict) }

// AppNetworkName is the name of an app's default network: the app's name
// ("default" for the default app), with characters a DNS label cannot hold
// replaced by '-'.
func AppNetworkName(app string) string {
	if app == "" || app == DefaultNetwork {
		return DefaultNetwork
	}
	b := []byte(app)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-_")
}

// appNetwork returns the app's default network, creating it the first time.
func (s *Service) appNetwork(ctx context.Context, app string) (*Network, error) {
	name := AppNetworkName(app)
	var n *Network
	if err := s.db.View(func(tx *bbolt.Tx) (err error) {
		n, err = lookupNet(tx, name)
		return err
	}); err != nil || n != nil {
		return n, err
	}
	if n, err := s.appOverlayNetwork(ctx, app); err != nil || n != nil {
		return n, err
	}
	a := app
	if name == DefaultNetwork {
		a = DefaultNetwork
	}
	return s.create(ctx, CreateRequest{Name: name, App: a, Labels: map[string]string{"ferry.app": a}})
}

// Attach gives a machine its endpoints (a TAP, MAC, IPv4 and IPv6 address
// on each network) and its published ports, and puts its names in those
// networks' resolvers. Bad input — an unknown network, an address outside
// its subnet or taken, an alias that is not a DNS label or is given twice or
// is another machine's name, ports on an internal network, a busy host
// port — is reported before anything is created. Calling it again for an
// attached machine (machine or daemon restart) with the same networks keeps
// its addresses and ports, re-creates whatever is missing and re-opens the
// TAPs — which fails (EBUSY) while a VMM still holds them.
func (s *Service) Attach(ctx context.Context, req AttachRequest) (*Attachment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.MachineID == "" {
		return nil, fmt.Errorf("network attach: no machine id: %w", errdefs.ErrInvalidArgument)
	}
	if req.Name == "" {
		req.Name = req.MachineID
	}
	att, err := s.attach(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("network attach %s: %w", req.Name, err)
	}
	return att, nil
}

func (s *Service) attach(ctx context.Context, req AttachRequest) (*Attachment, error) {
	if none, err := noNetwork(req); err != nil || none {
		if err != nil {
			return nil, err
		}
		if err := s.releaseID(ctx, req.MachineID); err != nil {
			return nil, err
		}
		return &Attachment{MachineID: req.MachineID, NetNS: s.cfg.NetNS}, nil
	}
	nets, err := s.resolveNets(ctx, req)
	if err != nil {
		return nil, err
	}
	var existing *machineRecord
	if err := s.db.View(func(tx *bbolt.Tx) (err error) {
		existing, err = getMachine(tx, req.MachineID)
		return err
	}); err != nil {
		return nil, err
	}
	if existing != nil && !sameEndpoints(existing, req, nets) {
		if err := s.release(ctx, existing); err != nil {
			return nil, err
		}
		existing = nil
	}
	rec := existing
	if rec == nil {
		if rec, err = s.record(ctx, req, nets); err != nil {
			return nil, err
		}
	}
	att, err := s.realize(ctx, rec, nets)
	if err != nil {
		if existing == nil {
			if rerr := s.release(ctx, rec); rerr != nil {
				s.log.Warn("network: undo failed attach", "machine", req.MachineID, "err", rerr)
			}
		}
		return nil, err
	}
	return att, nil
}

// noNetwork reports whether req asks for --network none, and refuses
// none with anything else.
func noNetwork(req AttachRequest) (bool, error) {
	i := slices.IndexFunc(req.Networks, func(e EndpointRequest) bool { return e.Network == NoNetwork })
	switch {
	case i < 0:
		return false, nil
	case len(req.Networks) > 1:
		return false, fmt.Errorf("network none is no network at all: it cannot be joined with others (drop --network none): %w", errdefs.ErrInvalidArgument)
	case len(req.Ports) > 0:
		return false, fmt.Errorf("network none has no published ports (drop -p, or pick a network): %w", errdefs.ErrInvalidArgument)
	case len(req.Networks[0].Aliases) > 0 || req.Networks[0].IPv4.IsValid() || req.Networks[0].IPv6.IsValid():
		return false, fmt.Errorf("network none has no names or addresses (drop --network-alias, --ip, --ip6): %w", errdefs.ErrInvalidArgument)
	}
	return true, nil
}

// releaseID releases the machine's recorded endpoints, if any.
func (s *Service) releaseID(ctx context.Context, machineID string) error {
	var rec *machineRecord
	if err := s.db.View(func(tx *bbolt.Tx) (err error) {
		rec, err = getMachine(tx, machineID)
		return err
	}); err != nil || rec == nil {
		return err
	}
	return s.release(ctx, rec)
}

// resolveNets finds (or, for the app's default, creates) the networks of
// req, in order.
func (s *Service) resolveNets(ctx context.Context, req AttachRequest) ([]*Network, error) {
	if len(req.Networks) == 0 {
		n, err := s.appNetwork(ctx, req.App)
		if err != nil {
			return nil, err
		}
		return []*Network{n}, nil
	}
	var out []*Network
	for _, er := range req.Networks {
		var n *Network
		if app, ok := map[string]string{AppNetworkName(req.App): req.App, DefaultNetwork: ""}[er.Network]; ok {
			var err error
			if n, err = s.appNetwork(ctx, app); err != nil {
				return nil, err
			}
		} else if err := s.db.View(func(tx *bbolt.Tx) (err error) {
			n, err = lookupNet(tx, er.Network)
			return err
		}); err != nil {
			return nil, err
		}
		if n == nil {
			return nil, notFound(er.Network)
		}
		if slices.ContainsFunc(out, func(o *Network) bool { return o.ID == n.ID }) {
			return nil, fmt.Errorf("network %s given twice: %w", n.Name, errdefs.ErrInvalidArgument)
		}
		out = append(out, n)
	}
	return out, nil
}

// sameEndpoints reports whether rec already is what req asks for.
func sameEndpoints(rec *machineRecord, req AttachRequest, nets []*Network) bool {
	if len(rec.Endpoints) != len(nets) || rec.Name != req.Name {
		return false
	}
	for i, e := range rec.Endpoints {
		var er EndpointRequest
		if i < len(req.Networks) {
			er = req.Networks[i]
		}
		if e.NetworkID != nets[i].ID || !slices.Equal(e.Aliases, er.Aliases) || e.Requested != er.IPv4 {
			return false
		}
	}
	return true
}

// record validates req and writes the machine's record (addresses
// allocated) before anything exists in the kernel, so a crash from here on
// leaves a record Release and Reconcile act on.
func (s *Service) record(ctx context.Context, req AttachRequest, nets []*Network) (*machineRecord, error) {
	if len(req.Ports) > 0 && nets[0].Internal {
		return nil, fmt.Errorf("network %s is internal: it has no published ports (drop -p, or put the machine on another network first): %w",
			nets[0].Name, errdefs.ErrInvalidArgument)
	}
	ports, err := s.checkPorts(req.MachineID, req.Ports)
	if err != nil {
		return nil, err
	}
	rec := &machineRecord{MachineID: req.MachineID, Name: req.Name, App: req.App}
	for _, p := range ports {
		rec.Ports = append(rec.Ports, toPortRecord(p))
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		others, err := allMachines(tx)
		if err != nil {
			return err
		}
		for i, n := range nets {
			var er EndpointRequest
			if i < len(req.Networks) {
				er = req.Networks[i]
			}
			if err := checkAliases(n, er.Aliases, req, others); err != nil {
				return err
			}
			ip := er.IPv4
			if ip.IsValid() {
				if err := claim(tx, n, ip, req.MachineID); err != nil {
					return err
				}
			} else if ip, err = allocate(tx, n); err != nil {
				return err
			}
			e := Endpoint{NetworkID: n.ID, Network: n.Name, MachineID: req.MachineID, Name: req.Name, App: req.App,
				Aliases: slices.Clone(er.Aliases), Tap: TapName(req.MachineID, n.ID), MAC: MAC(req.MachineID, n.ID),
				IPv4: netip.PrefixFrom(ip, n.Subnet.Bits()), Gateway: n.Gateway, Requested: er.IPv4}
			if n.IPv6() {
				v6 := er.IPv6
				if !v6.IsValid() {
					v6 = ipv6For(n, ip)
				} else if !n.Subnet6.Contains(v6) || v6 == n.Gateway6 {
					return fmt.Errorf("network %s: address %s is not a machine address of subnet %s: %w", n.Name, v6, n.Subnet6, errdefs.ErrInvalidArgument)
				}
				e.IPv6, e.Gateway6 = netip.PrefixFrom(v6, n.Subnet6.Bits()), n.Gateway6
			}
			rec.Endpoints = append(rec.Endpoints, toEndpointRecord(e))
		}
		return putMachine(tx, rec)
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// checkAliases refuses aliases that are not DNS labels, repeat, or are
// another machine's name on n. (Machines may share an alias: its answer is
// every one of them, as Docker's and compose's service names.)
func checkAliases(n *Network, aliases []string, req AttachRequest, others []*machineRecord) error {
	for i, a := range aliases {
		if !ValidName(a) {
			return fmt.Errorf("alias %q is not a DNS label: %w", a, errdefs.ErrInvalidArgument)
		}
		if slices.Contains(aliases[:i], a) || strings.EqualFold(a, req.Name) {
			return fmt.Errorf("alias %q given twice on network %s: %w", a, n.Name, errdefs.ErrInvalidArgument)
		}
		for _, o := range others {
			for _, e := range o.Endpoints {
				if o.MachineID != req.MachineID && e.NetworkID == n.ID && strings.EqualFold(o.Name, a) {
					return fmt.Errorf("alias %q on network %s is the name of machine %s there: %w", a, n.Name, o.Name, errdefs.ErrConflict)
				}
			}
		}
	}
	return nil
}

// checkPorts validates requested ports against other machines' and the
// host's, and picks host ports for "-p GUEST".
func (s *Service) checkPorts(machineID string, ports []Port) ([]Port, error) {
	var taken []Port
	if err := s.db.View(func(tx *bbolt.Tx) error {
		recs, err := allMachines(tx)
		for _, r := range recs {
			if r.MachineID != machineID {
				taken = append(taken, r.ports()...)
			}
		}
		return err
	}); err != nil {
		return nil, err
	}
	out := make([]Port, 0, len(ports))
	isTaken := func(p Port) bool {
		return slices.ContainsFunc(taken, p.overlaps) || slices.ContainsFunc(out, p.overlaps)
	}
	for _, p := range ports {
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
		if p.GuestPort == 0 || (p.Protocol != "tcp" && p.Protocol != "udp") {
			return nil, fmt.Errorf("publish %s: %w", p, errdefs.ErrInvalidArgument)
		}
		if p.HostIP.Zone() != "" || (p.HostIP.IsValid() && !p.HostIP.IsUnspecified() && p.HostIP.IsLinkLocalUnicast()) {
			return nil, fmt.Errorf("publish %s: link-local host addresses are not supported: %w", p, errdefs.ErrInvalidArgument)
		}
		if p.HostPort != 0 && isTaken(p) {
			return nil, fmt.Errorf("publish %s: port already published by another machine: %w", p, errdefs.ErrConflict)
		}
		// A published port is served by DNAT, not bound: a random port the
		// kernel offers may still be another machine's, so ask again.
		want := p.HostPort
		hp, err := probePort(s.ns, p)
		for try := 0; err == nil && want == 0 && isTaken(Port{HostIP: p.HostIP, HostPort: hp, Protocol: p.Protocol}) && try < 20; try++ {
			hp, err = probePort(s.ns, p)
		}
		if err != nil {
			return nil, err
		}
		p.HostPort = hp
		if isTaken(p) {
			if want == 0 {
				return nil, fmt.Errorf("publish %s: no free host port found: %w", p, errdefs.ErrUnavailable)
			}
			return nil, fmt.Errorf("publish %s: host port given twice: %w", p, errdefs.ErrInvalidArgument)
		}
		out = append(out, p)
	}
	return out, nil
}

// realize makes rec true: networks' bridges, TAPs on them and up, rules,
// resolvers' records.
func (s *Service) realize(ctx context.Context, rec *machineRecord, nets []*Network) (*Attachment, error) {
	att := &Attachment{MachineID: rec.MachineID, Ports: rec.ports(), NetNS: s.cfg.NetNS}
	ok := false
	defer func() {
		if !ok {
			att.Close()
		}
	}()
	for i, e := range rec.endpoints() {
		if err := s.ensureBridge(nets[i]); err != nil {
			return nil, err
		}
		f, mtu, err := s.plugTap(e, nets[i].Bridge)
		if err != nil {
			return nil, err
		}
		e.File, e.MTU = f, mtu
		att.Endpoints = append(att.Endpoints, e)
	}
	if err := s.applyMachine(ctx, "add", rec); err != nil {
		return nil, err
	}
	for _, n := range nets {
		if err := s.startResolver(n); err != nil {
			return nil, err
		}
	}
	att.DNS, att.Search = s.guestDNS(rec)
	s.startProxies(rec)
	ok = true
	return att, nil
}

// guestDNS is what a machine's resolv.conf names: the daemon's --dns, or
// the primary network's resolver (both families) with the app's zone as
// the search domain (so "db" finds db.APP.internal too).
func (s *Service) guestDNS(rec *machineRecord) (nameservers, search []string) {
	if len(s.cfg.DNS) > 0 {
		return slices.Clone(s.cfg.DNS), nil
	}
	if len(rec.Endpoints) == 0 {
		return nil, nil
	}
	p := rec.Endpoints[0]
	nameservers = []string{p.Gateway.String()}
	if p.Gateway6.IsValid() {
		nameservers = append(nameservers, p.Gateway6.String())
	}
	if rec.App != "" {
		search = []string{rec.App + "." + resolver.Domain}
	}
	return nameservers, search
}

// Release removes everything the machine had: its names from the
// resolvers, its ports and anti-spoofing entries, its TAPs, its addresses.
// Releasing an unknown machine is not an error.
func (s *Service) Release(ctx context.Context, machineID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.releaseID(ctx, machineID); err != nil {
		return fmt.Errorf("network release %s: %w", machineID, err)
	}
	return nil
}

// release drops the record first (DNS and rules follow it at once, so no
// packet or answer outlives it), then the TAPs.
func (s *Service) release(ctx context.Context, rec *machineRecord) error {
	s.stopProxies(rec.MachineID)
	if err := s.db.Update(func(tx *bbolt.Tx) error { return deleteMachine(tx, rec) }); err != nil {
		return err
	}
	var errs []error
	errs = append(errs, s.refreshDNS(), s.applyMachine(ctx, "delete", rec))
	for _, e := range rec.Endpoints {
		errs = append(errs, s.deleteLink(e.Tap))
	}
	return errors.Join(errs...)
}

// Rename changes the machine's DNS name on every network it is on.
func (s *Service) Rename(ctx context.Context, machineID, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		rec, err := getMachine(tx, machineID)
		if err != nil || rec == nil {
			return err
		}
		rec.Name = name
		return putMachine(tx, rec)
	})
	if err == nil {
		err = s.refreshDNS()
	}
	if err != nil {
		return fmt.Errorf("network rename %s: %w", machineID, err)
	}
	return nil
}

// Attachment returns a machine's recorded attachment (without open TAPs);
// nil when it has none.
func (s *Service) Attachment(ctx context.Context, machineID string) (*Attachment, error) {
	var rec *machineRecord
	if err := s.db.View(func(tx *bbolt.Tx) (err error) {
		rec, err = getMachine(tx, machineID)
		return err
	}); err != nil || rec == nil {
		return nil, err
	}
	att := &Attachment{MachineID: rec.MachineID, Endpoints: rec.endpoints(), Ports: rec.ports(), NetNS: s.cfg.NetNS}
	att.DNS, att.Search = s.guestDNS(rec)
	return att, nil
}

// Reconcile removes what belongs to no live machine and no network:
// records (and their addresses) of machines not in live, ferry TAPs and
// bridges no record names; then it re-applies the rules and resolvers.
func (s *Service) Reconcile(ctx context.Context, live []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	alive := map[string]bool{}
	for _, id := range live {
		alive[id] = true
	}
	var recs []*machineRecord
	var nets []*Network
	if err := s.db.View(func(tx *bbolt.Tx) (err error) {
		if recs, err = allMachines(tx); err != nil {
			return err
		}
		nets, err = allNets(tx)
		return err
	}); err != nil {
		return fmt.Errorf("network reconcile: %w", err)
	}
	var errs []error
	keep := map[string]bool{}
	for _, n := range nets {
		keep[n.Bridge] = true
	}
	for _, r := range recs {
		if alive[r.MachineID] {
			for _, e := range r.Endpoints {
				keep[e.Tap] = true
			}
			continue
		}
		s.log.Info("network: releasing orphan", "machine", r.MachineID)
		if err := s.release(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", r.MachineID, err))
		}
	}
	links, err := s.linkNames()
	if err != nil {
		return fmt.Errorf("network reconcile: %w", err)
	}
	for _, name := range links {
		if (isOurTap(name) || isOurBridge(name)) && !keep[name] {
			s.log.Info("network: deleting orphan link", "link", name)
			errs = append(errs, s.deleteLink(name))
		}
	}
	if len(nets) > 0 {
		errs = append(errs, s.apply(ctx))
		for _, n := range nets {
			errs = append(errs, s.startResolver(n))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("network reconcile: %w", err)
	}
	return nil
}
