package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// TestAliasesOrgBlobsAndOrgs covers, on both engines, the methods the other
// tests leave out: digest aliases, org blob locations (an upsert), repo
// removal, activity pruning, org listing and an org's cascade on delete.
func TestAliasesOrgBlobsAndOrgs(t *testing.T) {
	for engine, s := range openTestStores(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			if err := s.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			const alias, canon = "sha512:" + "ab", "sha256:" + "cd"
			for i := 0; i < 2; i++ { // the second add is a no-op
				if err := s.AddDigestAlias(ctx, alias, canon); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := s.DigestAlias(ctx, alias); err != nil || got != canon {
				t.Fatalf("alias: %q %v", got, err)
			}
			if _, err := s.DigestAlias(ctx, "sha512:00"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("unknown alias: %v", err)
			}

			b, _ := s.CreateOrg(ctx, "beta")
			a, _ := s.CreateOrg(ctx, "alpha")
			orgs, err := s.Orgs(ctx)
			if err != nil || len(orgs) != 2 || orgs[0].Name != "alpha" || orgs[1].ID != b.ID || orgs[0].CreatedAt.IsZero() {
				t.Fatalf("orgs: %+v %v", orgs, err)
			}
			if err := s.RecordOrgBlob(ctx, a.ID, canon, "web"); err != nil {
				t.Fatal(err)
			}
			if err := s.RecordOrgBlob(ctx, a.ID, canon, "api"); err != nil {
				t.Fatal(err)
			}
			if repo, err := s.OrgBlobRepo(ctx, a.ID, canon); err != nil || repo != "api" {
				t.Fatalf("org blob: %q %v", repo, err)
			}
			if _, err := s.OrgBlobRepo(ctx, b.ID, canon); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("another org's blob: %v", err)
			}

			_ = s.AddRepo(ctx, a.ID, "web")
			_ = s.AddRepo(ctx, a.ID, "api")
			if err := s.RemoveRepo(ctx, a.ID, "web"); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.Repos(ctx, a.ID, "", 10); strings.Join(got, ",") != "api" {
				t.Fatalf("repos after remove: %v", got)
			}

			old := time.Now().Add(-2 * time.Hour)
			_ = s.TouchBlobs(ctx, old, "sha256:old")
			_ = s.TouchBlobs(ctx, time.Now(), "sha256:new")
			if err := s.ForgetBlobActivity(ctx, time.Now().Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
			if ok, _ := s.BlobTouchedSince(ctx, "sha256:old", old.Add(-time.Minute)); ok {
				t.Fatal("old activity kept")
			}
			if ok, _ := s.BlobTouchedSince(ctx, "sha256:new", time.Now().Add(-time.Minute)); !ok {
				t.Fatal("new activity pruned")
			}

			if err := s.DeleteOrg(ctx, "alpha"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.OrgBlobRepo(ctx, a.ID, canon); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("org blob outlived its org: %v", err)
			}
			if got, _ := s.Repos(ctx, a.ID, "", 10); len(got) != 0 {
				t.Fatalf("repos outlived their org: %v", got)
			}
			if err := s.DeleteOrg(ctx, "alpha"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("delete twice: %v", err)
			}
		})
	}
}
