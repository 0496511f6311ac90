package network

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"

	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// bbolt layout, under the top-level bucket "networks" (records are JSON with
// a version "v"; a reader refuses versions it does not know):
//
//	nets/<network id>        network record
//	names/<network name>     network id
//	machines/<machine id>    machine record: name, app, published ports and
//	                         endpoints (network, TAP, MAC, addresses, aliases)
//	ips/<network id>/<addr>  machine id (the allocation index; IPv4)
//	meta/ula                 the daemon's ULA /48 (random, RFC 4193)
//	meta/next/<network id>   address to try first (allocation is round-robin,
//	                         so a released address is not handed out again soon)
//
// Earlier versions kept one flat network in the bucket "network"
// (machines/<id> → {ip, tap, mac, ports}); Open moves those records onto
// the default network and drops the old bucket.
var (
	bucketTop      = []byte("networks")
	bucketNets     = []byte("nets")
	bucketNames    = []byte("names")
	bucketMachines = []byte("machines")
	bucketIPs      = []byte("ips")
	bucketMeta     = []byte("meta")
	keyULA         = []byte("ula")
	legacyBucket   = []byte("network")
)

const recordVersion = 1

type netRecord struct {
	V int `json:"v"`
	Network
}

// machineRecord is what the database keeps per attached machine; it is
// written before the TAPs and rules it names exist, so Release and
// Reconcile can always find them.
type machineRecord struct {
	V         int              `json:"v"`
	MachineID string           `json:"machine_id"`
	Name      string           `json:"name"`
	App       string           `json:"app"`
	Ports     []portRecord     `json:"ports,omitempty"`
	Endpoints []endpointRecord `json:"endpoints"`
}

// portRecord is a Port as the database keeps it.
type portRecord struct {
	Proto     string     `json:"proto"`
	HostIP    netip.Addr `json:"host_ip,omitzero"`
	HostPort  uint16     `json:"host_port"`
	GuestPort uint16     `json:"guest_port"`
}

// endpointRecord is an Endpoint as the database keeps it.
type endpointRecord struct {
	NetworkID string       `json:"network_id"`
	Network   string       `json:"network"`
	Aliases   []string     `json:"aliases,omitempty"`
	Tap       string       `json:"tap"`
	MAC       string       `json:"mac"`
	IPv4      netip.Prefix `json:"ipv4"`
	Gateway   netip.Addr   `json:"gateway"`
	IPv6      netip.Prefix `json:"ipv6,omitzero"`
	Gateway6  netip.Addr   `json:"gateway6,omitzero"`
	Requested netip.Addr   `json:"requested,omitzero"`
}

// The one conversion each way between the API types and their records (a
// test checks that every field is carried).
func toPortRecord(p Port) portRecord {
	return portRecord{Proto: p.Protocol, HostIP: p.HostIP, HostPort: p.HostPort, GuestPort: p.GuestPort}
}

func fromPortRecord(r portRecord) Port {
	return Port{Protocol: r.Proto, HostIP: r.HostIP, HostPort: r.HostPort, GuestPort: r.GuestPort}
}

func toEndpointRecord(e Endpoint) endpointRecord {
	return endpointRecord{NetworkID: e.NetworkID, Network: e.Network, Aliases: slices.Clone(e.Aliases), Tap: e.Tap, MAC: e.MAC,
		IPv4: e.IPv4, Gateway: e.Gateway, IPv6: e.IPv6, Gateway6: e.Gateway6, Requested: e.Requested}
}

// fromEndpointRecord takes the machine's name and app from its record.
func fromEndpointRecord(m *machineRecord, r endpointRecord) Endpoint {
	return Endpoint{NetworkID: r.NetworkID, Network: r.Network, MachineID: m.MachineID, Name: m.Name, App: m.App,
		Aliases: slices.Clone(r.Aliases), Tap: r.Tap, MAC: r.MAC, IPv4: r.IPv4, Gateway: r.Gateway, IPv6: r.IPv6,
		Gateway6: r.Gateway6, Requested: r.Requested}
}

// ports and endpoints return the record's API values.
func (m *machineRecord) ports() []Port {
	var out []Port
	for _, p := range m.Ports {
		out = append(out, fromPortRecord(p))
	}
	return out
}

// portRules are the machine's published ports, to its primary endpoint's
// addresses.
func (m *machineRecord) portRules() []PortRule {
	if len(m.Endpoints) == 0 {
		return nil
	}
	p := fromEndpointRecord(m, m.Endpoints[0])
	out := make([]PortRule, 0, len(m.Ports))
	for _, port := range m.ports() {
		out = append(out, PortRule{Port: port, IPv4: p.IPv4.Addr(), IPv6: p.IPv6.Addr()})
	}
	return out
}

func (m *machineRecord) endpoints() []Endpoint {
	out := make([]Endpoint, 0, len(m.Endpoints))
	for _, e := range m.Endpoints {
		out = append(out, fromEndpointRecord(m, e))
	}
	return out
}

func initBuckets(tx *bbolt.Tx) error {
	top, err := tx.CreateBucketIfNotExists(bucketTop)
	if err != nil {
		return err
	}
	for _, b := range [][]byte{bucketNets, bucketNames, bucketMachines, bucketIPs, bucketMeta} {
		if _, err := top.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

func bkt(tx *bbolt.Tx, name []byte) *bbolt.Bucket { return tx.Bucket(bucketTop).Bucket(name) }

func decode[T any](what string, key, b []byte, v *T, version func(*T) int) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s record %s: %w", what, key, err)
	}
	if got := version(v); got != recordVersion {
		return fmt.Errorf("%s record %s has version %d, this ferry reads %d (a newer ferry wrote it): %w",
			what, key, got, recordVersion, errdefs.ErrConflict)
	}
	return nil
}

func getNet(tx *bbolt.Tx, id string) (*Network, error) {
	b := bkt(tx, bucketNets).Get([]byte(id))
	if b == nil {
		return nil, nil
	}
	var r netRecord
	if err := decode("network", []byte(id), b, &r, func(r *netRecord) int { return r.V }); err != nil {
		return nil, err
	}
	return &r.Network, nil
}

// lookupNet finds a network by name, ID or unique ID prefix.
func lookupNet(tx *bbolt.Tx, ref string) (*Network, error) {
	if id := bkt(tx, bucketNames).Get([]byte(ref)); id != nil {
		return getNet(tx, string(id))
	}
	if n, err := getNet(tx, ref); n != nil || err != nil {
		return n, err
	}
	var found *Network
	if len(ref) >= 3 {
		c := bkt(tx, bucketNets).Cursor()
		for k, _ := c.Seek([]byte(ref)); k != nil && len(k) >= len(ref) && string(k[:len(ref)]) == ref; k, _ = c.Next() {
			if found != nil {
				return nil, fmt.Errorf("network %q: ID prefix matches more than one network: %w", ref, errdefs.ErrInvalidArgument)
			}
			n, err := getNet(tx, string(k))
			if err != nil {
				return nil, err
			}
			found = n
		}
	}
	return found, nil
}

func putNet(tx *bbolt.Tx, n *Network) error {
	b, err := json.Marshal(netRecord{V: recordVersion, Network: *n})
	if err != nil {
		return err
	}
	if err := bkt(tx, bucketNets).Put([]byte(n.ID), b); err != nil {
		return err
	}
	return bkt(tx, bucketNames).Put([]byte(n.Name), []byte(n.ID))
}

func deleteNet(tx *bbolt.Tx, n *Network) error {
	if err := bkt(tx, bucketNames).Delete([]byte(n.Name)); err != nil {
		return err
	}
	if err := bkt(tx, bucketMeta).Delete(nextKey(n.ID)); err != nil {
		return err
	}
	return bkt(tx, bucketNets).Delete([]byte(n.ID))
}

func allNets(tx *bbolt.Tx) ([]*Network, error) {
	var out []*Network
	err := bkt(tx, bucketNets).ForEach(func(k, v []byte) error {
		var r netRecord
		if err := decode("network", k, v, &r, func(r *netRecord) int { return r.V }); err != nil {
			return err
		}
		n := r.Network
		out = append(out, &n)
		return nil
	})
	return out, err
}

func getMachine(tx *bbolt.Tx, id string) (*machineRecord, error) {
	b := bkt(tx, bucketMachines).Get([]byte(id))
	if b == nil {
		return nil, nil
	}
	var r machineRecord
	if err := decode("machine network", []byte(id), b, &r, func(r *machineRecord) int { return r.V }); err != nil {
		return nil, err
	}
	return &r, nil
}

func ipKey(netID string, a netip.Addr) []byte { return []byte(netID + "/" + a.String()) }

func putMachine(tx *bbolt.Tx, r *machineRecord) error {
	r.V = recordVersion
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	for _, e := range r.Endpoints {
		if err := bkt(tx, bucketIPs).Put(ipKey(e.NetworkID, e.IPv4.Addr()), []byte(r.MachineID)); err != nil {
			return err
		}
	}
	return bkt(tx, bucketMachines).Put([]byte(r.MachineID), b)
}

func deleteMachine(tx *bbolt.Tx, r *machineRecord) error {
	ips := bkt(tx, bucketIPs)
	for _, e := range r.Endpoints {
		k := ipKey(e.NetworkID, e.IPv4.Addr())
		if string(ips.Get(k)) == r.MachineID {
			if err := ips.Delete(k); err != nil {
				return err
			}
		}
	}
	return bkt(tx, bucketMachines).Delete([]byte(r.MachineID))
}

func allMachines(tx *bbolt.Tx) ([]*machineRecord, error) {
	var out []*machineRecord
	err := bkt(tx, bucketMachines).ForEach(func(k, v []byte) error {
		var r machineRecord
		if err := decode("machine network", k, v, &r, func(r *machineRecord) int { return r.V }); err != nil {
			return err
		}
		out = append(out, &r)
		return nil
	})
	return out, err
}

// legacyRecord is the one-network record of earlier versions.
type legacyRecord struct {
	MachineID string       `json:"machine_id"`
	IP        netip.Addr   `json:"ip"`
	Tap       string       `json:"tap"`
	MAC       string       `json:"mac"`
	Ports     []portRecord `json:"ports,omitempty"`
}

// takeLegacy returns and deletes the records of the old layout.
func takeLegacy(tx *bbolt.Tx) ([]legacyRecord, error) {
	top := tx.Bucket(legacyBucket)
	if top == nil {
		return nil, nil
	}
	var out []legacyRecord
	if b := top.Bucket([]byte("machines")); b != nil {
		if err := b.ForEach(func(k, v []byte) error {
			var r legacyRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("legacy network record %s: %w", k, err)
			}
			out = append(out, r)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return out, tx.DeleteBucket(legacyBucket)
}
