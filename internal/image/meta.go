package image

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.etcd.io/bbolt"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// The package's top-level bbolt buckets.
var (
	bucketImages = []byte("images") // manifest digest → record (JSON)
	bucketNames  = []byte("names")  // canonical ref → manifest digest
	bucketLeases = []byte("leases") // lease id → bucket of manifest digest → nil
)

// record is the stored metadata of one image (one manifest).
type record struct {
	MediaType types.MediaType `json:"media_type"`
	Platform  v1.Platform     `json:"platform"`
	Config    v1.Hash         `json:"config"`
	Size      int64           `json:"size"`
	Created   time.Time       `json:"created"`
	Pulled    time.Time       `json:"pulled"`
	// Origin is the repository the image came from (for cross-repo mounts on push).
	Origin string `json:"origin,omitempty"`
}

func getRecord(tx *bbolt.Tx, d v1.Hash) (*record, error) {
	b := tx.Bucket(bucketImages).Get([]byte(d.String()))
	if b == nil {
		return nil, fmt.Errorf("image %s: %w", d, errdefs.ErrNotFound)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("image %s: corrupt record: %w", d, err)
	}
	return &r, nil
}

func putRecord(tx *bbolt.Tx, d v1.Hash, r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketImages).Put([]byte(d.String()), b)
}

// namesOf returns the references pointing at d.
func namesOf(tx *bbolt.Tx, d v1.Hash) (tags, digests []string) {
	_ = tx.Bucket(bucketNames).ForEach(func(k, v []byte) error {
		if string(v) == d.String() {
			if strings.Contains(string(k), "@") {
				digests = append(digests, string(k))
			} else {
				tags = append(tags, string(k))
			}
		}
		return nil
	})
	return tags, digests
}

// leaseCount returns how many leases hold d.
func leaseCount(tx *bbolt.Tx, d v1.Hash) int {
	n := 0
	_ = tx.Bucket(bucketLeases).ForEachBucket(func(k []byte) error {
		if tx.Bucket(bucketLeases).Bucket(k).Get([]byte(d.String())) != nil {
			n++
		}
		return nil
	})
	return n
}

func summaryOf(tx *bbolt.Tx, d v1.Hash, r *record) Summary {
	tags, digests := namesOf(tx, d)
	return Summary{
		ID: d, RepoTags: tags, RepoDigests: digests, MediaType: r.MediaType,
		Platform: r.Platform, Size: r.Size, Created: r.Created, Pulled: r.Pulled,
		Leases: leaseCount(tx, d), Upstream: upstreamsOf(tx, tags),
	}
}

// resolve finds the image a local reference names: a reference (tag or
// digest, resolved like Docker), a full image ID (sha256:…), or a unique
// prefix of one.
func resolve(tx *bbolt.Tx, ref string) (v1.Hash, string, error) {
	if r, err := ParseReference(ref); err == nil {
		c := Canonical(r)
		if v := tx.Bucket(bucketNames).Get([]byte(c)); v != nil {
			d, err := v1.NewHash(string(v))
			return d, c, err
		}
	}
	if hexPrefix.MatchString(ref) {
		p := ref
		if !strings.HasPrefix(p, "sha256:") {
			p = "sha256:" + p
		}
		var found []v1.Hash
		c := tx.Bucket(bucketImages).Cursor()
		for k, _ := c.Seek([]byte(p)); k != nil && strings.HasPrefix(string(k), p); k, _ = c.Next() {
			if d, err := v1.NewHash(string(k)); err == nil {
				found = append(found, d)
			}
		}
		switch len(found) {
		case 1:
			return found[0], "", nil
		case 0:
		default:
			return v1.Hash{}, "", fmt.Errorf("image ID prefix %q is ambiguous (%d images): %w", ref, len(found), errdefs.ErrInvalidArgument)
		}
	}
	// repo@digest where the digest is the manifest's own (not recorded as a name).
	if r, err := ParseReference(ref); err == nil {
		if dr, ok := r.(interface{ DigestStr() string }); ok {
			if d, err := v1.NewHash(dr.DigestStr()); err == nil && tx.Bucket(bucketImages).Get([]byte(d.String())) != nil {
				return d, "", nil
			}
		}
	}
	return v1.Hash{}, "", fmt.Errorf("image %q: %w (pull it first: ferry pull %s)", ref, errdefs.ErrNotFound, ref)
}
