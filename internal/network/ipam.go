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
// them.
type record struct {
	MachineID string     `json:"machine_id"`
	IP        netip.Addr `json:"ip"`
	Tap       string     `json:"tap"`
	MAC       string     `json:"mac"`
	Ports     []Port     `json:"ports,omitempty"`
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
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("network record %s: %w", id, err)
	}
	return &r, nil
}

func putRecord(tx *bbolt.Tx, r *record) error {
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
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("network record %s: %w", k, err)
		}
		out = append(out, &r)
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
