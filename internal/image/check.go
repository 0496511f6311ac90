package image

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// CheckReport is the result of Check: every blob re-hashed, every image's
// manifest, config and layers looked for.
type CheckReport struct {
	Images  int           `json:"images"`
	Blobs   int           `json:"blobs"`
	Bytes   int64         `json:"bytes"`
	Corrupt []BlobProblem `json:"corrupt,omitempty"` // blobs whose content does not match their name
	Missing []BlobProblem `json:"missing,omitempty"` // blobs an image references that are absent
}

// BlobProblem is one failed check.
type BlobProblem struct {
	Digest string `json:"digest"`
	Image  string `json:"image,omitempty"`
	Reason string `json:"reason"`
}

// OK reports whether the cache checked clean.
func (r CheckReport) OK() bool { return len(r.Corrupt) == 0 && len(r.Missing) == 0 }

// Check re-hashes every blob (Verify) and checks that every image's
// manifest, config and layers are present (`ferry image verify`).
func (s *Store) Check(ctx context.Context) (CheckReport, error) {
	var rep CheckReport
	bad, err := s.Verify(ctx)
	if err != nil {
		return rep, fmt.Errorf("verify blobs: %w", err)
	}
	for _, d := range bad {
		rep.Corrupt = append(rep.Corrupt, BlobProblem{Digest: d.String(), Reason: "content does not match its digest"})
	}
	if err := s.content.Walk(func(_ v1.Hash, size int64) error {
		rep.Blobs++
		rep.Bytes += size
		return nil
	}); err != nil {
		return rep, err
	}
	list, err := s.List(ctx)
	if err != nil {
		return rep, err
	}
	for _, sum := range list {
		rep.Images++
		name := sum.ID.String()
		if len(sum.RepoTags) > 0 {
			name = sum.RepoTags[0]
		}
		det, err := s.Inspect(ctx, sum.ID.String())
		if err != nil {
			rep.Missing = append(rep.Missing, BlobProblem{Digest: sum.ID.String(), Image: name, Reason: err.Error()})
			continue
		}
		want := []v1.Hash{sum.ID, det.ConfigDigest}
		for _, l := range det.Layers {
			want = append(want, l.Digest)
		}
		for _, h := range want {
			if !s.content.Has(h) {
				rep.Missing = append(rep.Missing, BlobProblem{Digest: h.String(), Image: name, Reason: "blob missing from the cache"})
			}
		}
	}
	return rep, nil
}

// ContentAllocated is the disk space the content store's files take
// (allocated blocks, not apparent sizes).
func (s *Store) ContentAllocated() int64 {
	var n int64
	_ = filepath.WalkDir(s.content.Root(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}
