package image

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

var bucketUpstream = []byte("upstream") // canonical local tag → UpstreamState (JSON)

// Upstream states of an image written back to its registry
// (internal/mirror's write-back).
const (
	UpstreamPending = "pending"
	UpstreamPushing = "pushing"
	UpstreamDone    = "done"
	UpstreamFailed  = "failed"
)

// UpstreamState is where the write-back of one tag to its upstream
// registry stands; it is durable, so a restarted daemon resumes pending
// pushes.
type UpstreamState struct {
	Target   string    `json:"target"` // the upstream reference pushed to
	State    string    `json:"state"`
	Done     int       `json:"done,omitempty"`  // blobs pushed (pushing)
	Total    int       `json:"total,omitempty"` // blobs to push (pushing)
	Error    string    `json:"error,omitempty"` // why the last attempt failed
	Attempts int       `json:"attempts,omitempty"`
	Updated  time.Time `json:"updated"`
}

// String is the state as `ferry images` shows it: "pushing 2/5",
// "failed: <reason>".
func (u UpstreamState) String() string {
	switch u.State {
	case UpstreamPushing:
		return fmt.Sprintf("pushing %d/%d", u.Done, u.Total)
	case UpstreamFailed:
		return "failed: " + u.Error
	}
	return u.State
}

// SetUpstream records the upstream state of the local tag name.
func (s *Store) SetUpstream(ctx context.Context, name string, u UpstreamState) error {
	canon, err := CanonicalString(name)
	if err != nil {
		return fmt.Errorf("upstream state: %w", err)
	}
	u.Updated = time.Now().UTC()
	raw, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketUpstream)
		if err != nil {
			return err
		}
		return b.Put([]byte(canon), raw)
	})
}

// Upstreams returns every recorded upstream state by canonical local tag.
func (s *Store) Upstreams(ctx context.Context) (map[string]UpstreamState, error) {
	out := map[string]UpstreamState{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketUpstream)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var u UpstreamState
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("upstream state of %s: %w", k, err)
			}
			out[string(k)] = u
			return nil
		})
	})
	return out, err
}

// upstreamsOf are the upstream states of tags (nil when none).
func upstreamsOf(tx *bbolt.Tx, tags []string) map[string]UpstreamState {
	b := tx.Bucket(bucketUpstream)
	if b == nil {
		return nil
	}
	var out map[string]UpstreamState
	for _, t := range tags {
		var u UpstreamState
		if v := b.Get([]byte(t)); v != nil && json.Unmarshal(v, &u) == nil {
			if out == nil {
				out = map[string]UpstreamState{}
			}
			out[t] = u
		}
	}
	return out
}
