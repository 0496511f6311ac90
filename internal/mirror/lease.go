package mirror

import (
	"context"
	"io"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A pushed blob is leased from its upload until a manifest references it
// (image.Store.ReleaseBlobs), so neither an image gc nor a daemon restart
// in between collects it. Leases are grouped by upload time window, named
// uploadLease + the window's start, and a window older than the Server's
// lease TTL is dropped: the blobs of an abandoned push go at the next gc.
const (
	uploadLease  = "mirror-upload/"
	leaseWindow  = 10 * time.Minute
	leaseSweepEv = time.Minute // how often expired windows are looked for
)

// DefaultUploadTTL is how long a pushed blob waits for its manifest.
const DefaultUploadTTL = 24 * time.Hour

// leaseID is the lease of blobs uploaded now.
func leaseID(now time.Time) string {
	return uploadLease + now.UTC().Truncate(leaseWindow).Format(time.RFC3339)
}

// commitBlob stores r as blob d (nil r: d is already there, as for a
// mount) and leases it until a manifest references it.
func (s *Server) commitBlob(ctx context.Context, d v1.Hash, size int64, r io.Reader) error {
	s.sweepLeases(ctx)
	return s.img.IngestBlob(ctx, leaseID(time.Now()), d, size, r)
}

// releaseBlobs hands the blobs a stored manifest references over to it.
func (s *Server) releaseBlobs(ctx context.Context, ds []v1.Hash) {
	if err := s.img.ReleaseBlobs(context.WithoutCancel(ctx), uploadLease, ds...); err != nil {
		s.log.Warn("mirror: releasing upload leases", "err", err)
	}
}

// sweepLeases drops upload lease windows older than the TTL, at most once
// a minute.
func (s *Server) sweepLeases(ctx context.Context) {
	s.mu.Lock()
	if time.Since(s.swept) < leaseSweepEv {
		s.mu.Unlock()
		return
	}
	s.swept = time.Now()
	s.mu.Unlock()
	leases, err := s.img.Leases(ctx)
	if err != nil {
		s.log.Warn("mirror: reading upload leases", "err", err)
		return
	}
	for id := range leases {
		at, ok := strings.CutPrefix(id, uploadLease)
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339, at)
		if err != nil || time.Since(t) > s.uploadTTL+leaseWindow {
			if err := s.img.RemoveLease(ctx, id); err != nil {
				s.log.Warn("mirror: dropping an expired upload lease", "lease", id, "err", err)
				continue
			}
			s.log.Info("mirror: blobs pushed without a manifest expired", "lease", id, "blobs", len(leases[id]))
		}
	}
}
