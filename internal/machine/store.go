package machine

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/api/types"
)

// Buckets in the shared metadata database (paths.Root.MetaDB):
//
//	machine.v1.machines   id → record (JSON, versioned: record.go)
//	machine.v1.names      app "\x00" name → id
//	machine.v1.versions   id "\x00" %08d version → Config (JSON)
var (
	bucketMachines = []byte("machine.v1.machines")
	bucketNames    = []byte("machine.v1.names")
	bucketVersions = []byte("machine.v1.versions")
)

// store persists machines in bbolt. It holds no cache; Manager does.
type store struct{ db *bolt.DB }

func openStore(db *bolt.DB) (*store, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMachines, bucketNames, bucketVersions} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("machine store: %w", err)
	}
	return &store{db: db}, nil
}

func nameKey(app, name string) []byte { return []byte(app + "\x00" + name) }

func versionKey(id string, v int) []byte { return fmt.Appendf(nil, "%s\x00%08d", id, v) }

// put writes m (and its name index). When prevName is set and differs, the
// old name is released in the same transaction. newVersion also records
// m.Config as version m.Version.
func (s *store) put(m *types.Machine, prevName string, newVersion bool) error {
	b, err := encodeRecord(m)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketNames)
		if prevName != "" && prevName != m.Name {
			if err := names.Delete(nameKey(m.App, prevName)); err != nil {
				return err
			}
		}
		if err := names.Put(nameKey(m.App, m.Name), []byte(m.ID)); err != nil {
			return err
		}
		if newVersion {
			cb, err := json.Marshal(m.Config)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketVersions).Put(versionKey(m.ID, m.Version), cb); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMachines).Put([]byte(m.ID), b)
	})
}

// delete removes m, its name and its versions.
func (s *store) delete(m *types.Machine) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketNames)
		if id := names.Get(nameKey(m.App, m.Name)); string(id) == m.ID {
			if err := names.Delete(nameKey(m.App, m.Name)); err != nil {
				return err
			}
		}
		vc := tx.Bucket(bucketVersions).Cursor()
		prefix := []byte(m.ID + "\x00")
		for k, _ := vc.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = vc.Seek(prefix) {
			if err := vc.Delete(); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMachines).Delete([]byte(m.ID))
	})
}

// versions returns the recorded configs of id, oldest first.
func (s *store) versions(id string) ([]types.Config, error) {
	var out []types.Config
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketVersions).Cursor()
		prefix := []byte(id + "\x00")
		for k, v := c.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
			var cfg types.Config
			if err := json.Unmarshal(v, &cfg); err != nil {
				return err
			}
			out = append(out, cfg)
		}
		return nil
	})
	return out, err
}

// all loads every machine.
func (s *store) all() ([]*types.Machine, error) {
	var out []*types.Machine
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMachines).ForEach(func(k, v []byte) error {
			m, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	})
	return out, err
}
