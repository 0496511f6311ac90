package rootfs

import (
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// Bucket layout in meta.db:
//
//	rootfs/
//	  bases/<manifest-hex>  baseRecord (JSON)
//	  machines/<id>         machineRecord (JSON)
var (
	bucketRoot     = []byte("rootfs")
	bucketBases    = []byte("bases")
	bucketMachines = []byte("machines")
)

// Record states: a record is written in the first state before any file
// is touched, so New/GC can finish or undo whatever a crash interrupted.
const (
	stateBuilding  = "building"  // base: lease taken, file being built
	statePreparing = "preparing" // machine: files being created
	stateReady     = "ready"
	stateReleasing = "releasing" // machine: files being removed
	stateRemoving  = "removing"  // base: file and lease being removed
)

type baseRecord struct {
	Digest  string    `json:"digest"`
	State   string    `json:"state"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

type machineRecord struct {
	ID       string      `json:"id"`
	Base     string      `json:"base"` // manifest hex
	Mode     Mode        `json:"mode"`
	State    string      `json:"state"`
	Writable string      `json:"writable"`
	Size     int64       `json:"size"`
	Clone    CloneMethod `json:"clone,omitempty"`
}

type txBuckets struct{ bases, machines *bbolt.Bucket }

func buckets(tx *bbolt.Tx) (txBuckets, error) {
	if !tx.Writable() {
		r := tx.Bucket(bucketRoot)
		if r == nil {
			return txBuckets{}, fmt.Errorf("rootfs bucket missing")
		}
		return txBuckets{r.Bucket(bucketBases), r.Bucket(bucketMachines)}, nil
	}
	r, err := tx.CreateBucketIfNotExists(bucketRoot)
	if err != nil {
		return txBuckets{}, err
	}
	b, err := r.CreateBucketIfNotExists(bucketBases)
	if err != nil {
		return txBuckets{}, err
	}
	mb, err := r.CreateBucketIfNotExists(bucketMachines)
	if err != nil {
		return txBuckets{}, err
	}
	return txBuckets{b, mb}, nil
}

func getJSON[T any](b *bbolt.Bucket, key string) (*T, error) {
	v := b.Get([]byte(key))
	if v == nil {
		return nil, nil
	}
	var t T
	if err := json.Unmarshal(v, &t); err != nil {
		return nil, fmt.Errorf("decode record %s: %w", key, err)
	}
	return &t, nil
}

func putJSON(b *bbolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// viewRecords reads every record.
func (m *Manager) viewRecords() (map[string]baseRecord, map[string]machineRecord, error) {
	bases := map[string]baseRecord{}
	machines := map[string]machineRecord{}
	err := m.db.View(func(tx *bbolt.Tx) error {
		bk, err := buckets(tx)
		if err != nil {
			return err
		}
		if err := bk.bases.ForEach(func(k, v []byte) error {
			var r baseRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode base %s: %w", k, err)
			}
			bases[string(k)] = r
			return nil
		}); err != nil {
			return err
		}
		return bk.machines.ForEach(func(k, v []byte) error {
			var r machineRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode machine %s: %w", k, err)
			}
			machines[string(k)] = r
			return nil
		})
	})
	return bases, machines, err
}
