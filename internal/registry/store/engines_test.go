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
			b, _ := s.CreateOrg(ctx, "beta")
			a, _ := s.CreateOrg(ctx, "alpha")
			orgs, err := s.Orgs(ctx)
			if err != nil || len(orgs) != 2 || orgs[0].Name != "alpha" || orgs[1].ID != b.ID || orgs[0].CreatedAt.IsZero() || orgs[0].Quota != nil {
				t.Fatalf("orgs: %+v %v", orgs, err)
			}
			for i := 0; i < 2; i++ { // the second add is an upsert
				if err := s.AddDigestAlias(ctx, a.ID, alias, canon); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := s.DigestAlias(ctx, a.ID, alias); err != nil || got != canon {
				t.Fatalf("alias: %q %v", got, err)
			}
			for org, d := range map[string]string{a.ID: "sha512:00", b.ID: alias} {
				if _, err := s.DigestAlias(ctx, org, d); !errors.Is(err, errdefs.ErrNotFound) {
					t.Fatalf("unknown alias (or another org's): %v", err)
				}
			}

			if err := s.RecordRepoBlob(ctx, a.ID, "web", canon, 100); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1100 * time.Millisecond) // records are to the second
			if err := s.RecordRepoBlob(ctx, a.ID, "api", canon, 100); err != nil {
				t.Fatal(err)
			}
			if err := s.RecordRepoBlob(ctx, a.ID, "api", "sha256:ef", 20); err != nil {
				t.Fatal(err)
			}
			if repo, err := s.OrgBlobRepo(ctx, a.ID, canon); err != nil || repo != "api" {
				t.Fatalf("org blob: %q %v", repo, err)
			}
			if _, err := s.OrgBlobRepo(ctx, b.ID, canon); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("another org's blob: %v", err)
			}
			// A blob in two repositories counts once; open uploads count.
			if err := s.OpenUpload(ctx, "u1", a.ID, "web"); err != nil {
				t.Fatal(err)
			}
			if err := s.UploadProgress(ctx, a.ID, "u1", 7); err != nil {
				t.Fatal(err)
			}
			_ = s.UploadProgress(ctx, b.ID, "u1", 1000) // not b's session
			if u, err := s.Usage(ctx, a.ID, time.Now().Add(-time.Hour)); err != nil || u != 127 {
				t.Fatalf("usage %d %v, want 127", u, err)
			}
			if n, _ := s.OpenUploads(ctx, a.ID, time.Now().Add(-time.Minute)); n != 1 {
				t.Fatalf("open uploads %d", n)
			}
			if n, _ := s.OpenUploads(ctx, b.ID, time.Now().Add(-time.Minute)); n != 0 {
				t.Fatalf("open uploads of another org %d", n)
			}
			_ = s.CloseUpload(ctx, a.ID, "u1")
			if u, _ := s.Usage(ctx, a.ID, time.Now().Add(-time.Hour)); u != 120 {
				t.Fatalf("usage after close %d, want 120", u)
			}
			// gc's recount replaces a repository's records (but keeps ones
			// made while it ran), and forgetting a blob drops it everywhere.
			if err := s.SetRepoBlobs(ctx, a.ID, "api", map[string]int64{"sha256:ef": 30}, time.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if u, _ := s.Usage(ctx, a.ID, time.Now()); u != 130 {
				t.Fatalf("usage after recount %d, want 130 (web's 100 + api's 30)", u)
			}
			if err := s.ForgetBlobs(ctx, canon); err != nil {
				t.Fatal(err)
			}
			if _, err := s.DigestAlias(ctx, a.ID, alias); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("alias of a forgotten blob: %v", err)
			}
			if u, _ := s.Usage(ctx, a.ID, time.Now()); u != 30 {
				t.Fatalf("usage after forget %d, want 30", u)
			}
			q := int64(1 << 30)
			if err := s.SetOrgQuota(ctx, "alpha", &q); err != nil {
				t.Fatal(err)
			}
			if o, _ := s.Org(ctx, "alpha"); o.Quota == nil || *o.Quota != q {
				t.Fatalf("quota %v", o.Quota)
			}
			if err := s.SetOrgQuota(ctx, "nope", &q); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("quota of a missing org: %v", err)
			}
			_ = s.RecordRepoBlob(ctx, a.ID, "web", canon, 100)

			if err := s.AddRepo(ctx, a.ID, "web"); err != nil {
				t.Fatal(err)
			}
			if err := s.AddRepo(ctx, a.ID, "api"); err != nil {
				t.Fatal(err)
			}
			if err := s.RemoveRepo(ctx, a.ID, "web"); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.Repos(ctx, a.ID, "", 10); strings.Join(got, ",") != "api" {
				t.Fatalf("repos after remove: %v", got)
			}

			old := time.Now().Add(-2 * time.Hour)
			_ = s.TouchBlobs(ctx, old, a.ID, "sha256:old")
			_ = s.TouchBlobs(ctx, time.Now(), a.ID, "sha256:new")
			if err := s.ForgetBlobActivity(ctx, time.Now().Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
			if ok, _ := s.BlobTouchedSince(ctx, a.ID, "sha256:old", old.Add(-time.Minute)); ok {
				t.Fatal("old activity kept")
			}
			if ok, _ := s.BlobTouchedSince(ctx, a.ID, "sha256:new", time.Now().Add(-time.Minute)); !ok {
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
