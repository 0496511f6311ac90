package network

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// bbolt layout, under the top-level bucket "network":
//
//	machines/<machine id>  JSON record: address, TAP, MAC, published ports
//	ips/<address>          machine id (the allocation index)
//	meta/next              address to try first (allocation is round-robin,
//	                       so a released address is not handed out again soon)
var (
	bucketNetwork  = []byte("network")
	bucketMachines = []byte("machines")
	bucketIPs      = []byte("ips")
	bucketMeta     = []byte("meta")
	keyNext        = []byte("next")
)

// record is what the database keeps per machine; it is written before the
// TAP and rules it names exist, so Release and Reconcile can always find
// them. It is private to this package and versioned: V is recordVersion
// (0 in records written before versions existed, which have the same
// shape); a newer version is refused rather than misread.
type record struct {
	V         int          `json:"v,omitempty"`
	MachineID string       `json:"machine_id"`
	IP        netip.Addr   `json:"ip"`
	Tap       string       `json:"tap"`
	MAC       string       `json:"mac"`
	Ports     []portRecord `json:"ports,omitempty"`
}

const recordVersion = 1

// portRecord is a Port as the database keeps it.
type portRecord struct {
	Proto     string     `json:"proto"`
	HostIP    netip.Addr `json:"host_ip,omitzero"`
	HostPort  uint16     `json:"host_port"`
	GuestPort uint16     `json:"guest_port"`
}

// toPortRecord and fromPortRecord are the one conversion each way between
// Port and its record (a test checks that every field is carried).
func toPortRecord(p Port) portRecord {
	return portRecord{Proto: p.Protocol, HostIP: p.HostIP, HostPort: p.HostPort, GuestPort: p.GuestPort}
}

func fromPortRecord(r portRecord) Port {
	return Port{Protocol: r.Proto, HostIP: r.HostIP, HostPort: r.HostPort, GuestPort: r.GuestPort}
}

func newRecord(machineID string, ports []Port) *record {
	r := &record{V: recordVersion, MachineID: machineID, Tap: TapName(machineID), MAC: MAC(machineID)}
	for _, p := range ports {
		r.Ports = append(r.Ports, toPortRecord(p))
	}
	return r
}

// ports returns the record's published ports.
func (r *record) ports() []Port {
	var out []Port
	for _, p := range r.Ports {
		out = append(out, fromPortRecord(p))
	}
	return out
}

func decodeRecord(k, v []byte) (*record, error) {
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("network record %s: %w", k, err)
	}
	if r.V > recordVersion {
		return nil, fmt.Errorf("network record %s: version %d is newer than this ferry's %d; run the newer ferry: %w",
			k, r.V, recordVersion, errdefs.ErrConflict)
	}
	return &r, nil
}

func initBuckets(db *bbolt.DB) error {
	return db.Update(func(tx *bbolt.Tx) error {
		top, err := tx.CreateBucketIfNotExists(bucketNetwork)
		if err != nil {
			return err
		}
		for _, b := range [][]byte{bucketMachines, bucketIPs, bucketMeta} {
			if _, err := top.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

func bucket(tx *bbolt.Tx, name []byte) *bbolt.Bucket {
	return tx.Bucket(bucketNetwork).Bucket(name)
}

func getRecord(tx *bbolt.Tx, id string) (*record, error) {
	b := bucket(tx, bucketMachines).Get([]byte(id))
	if b == nil {
		return nil, nil
	}
	return decodeRecord([]byte(id), b)
}

func putRecord(tx *bbolt.Tx, r *record) error {
	r.V = recordVersion
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := bucket(tx, bucketMachines).Put([]byte(r.MachineID), b); err != nil {
		return err
	}
	return bucket(tx, bucketIPs).Put([]byte(r.IP.String()), []byte(r.MachineID))
}

func deleteRecord(tx *bbolt.Tx, r *record) error {
	if owner := bucket(tx, bucketIPs).Get([]byte(r.IP.String())); string(owner) == r.MachineID {
		if err := bucket(tx, bucketIPs).Delete([]byte(r.IP.String())); err != nil {
			return err
		}
	}
	return bucket(tx, bucketMachines).Delete([]byte(r.MachineID))
}

func allRecords(tx *bbolt.Tx) ([]*record, error) {
	var out []*record
	err := bucket(tx, bucketMachines).ForEach(func(k, v []byte) error {
		r, err := decodeRecord(k, v)
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// allocate returns a free host address of subnet (never the network
// address, the gateway or the broadcast address), starting after the last
// one handed out.
func allocate(tx *bbolt.Tx, subnet netip.Prefix) (netip.Addr, error) {
	ips, meta := bucket(tx, bucketIPs), bucket(tx, bucketMeta)
	first := subnet.Addr().Next().Next() // .0 network, .1 gateway
	last := lastAddr(subnet).Prev()      // broadcast excluded
	start := first
	if b := meta.Get(keyNext); b != nil {
		if a, err := netip.ParseAddr(string(b)); err == nil && subnet.Contains(a) && !a.Less(first) && !last.Less(a) {
			start = a
		}
	}
	a := start
	for {
		if ips.Get([]byte(a.String())) == nil {
			next := a.Next()
			if last.Less(next) {
				next = first
			}
			return a, meta.Put(keyNext, []byte(next.String()))
		}
		a = a.Next()
		if last.Less(a) {
			a = first
		}
		if a == start {
			return netip.Addr{}, fmt.Errorf("subnet %s exhausted: all %d machine addresses are allocated: %w",
				subnet, hostCount(subnet), errdefs.ErrUnavailable)
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// hostCount is how many machine addresses subnet holds.
func hostCount(p netip.Prefix) int { return 1<<(32-p.Bits()) - 3 }
