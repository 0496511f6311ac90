package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/image"
)

func newImagesCmd(g *globals) *cobra.Command {
	var (
		format       string
		quiet, all   bool
		noTrunc      bool
		digestsShown bool
	)
	cmd := &cobra.Command{
		Use:   "images [REPOSITORY[:TAG]]",
		Short: "List cached images",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "" && format != "table" && format != "json" {
				return fmt.Errorf("--format %q: want table or json: %w", format, errdefs.ErrInvalidArgument)
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			list, err := c.Images(cmd.Context(), all)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				list = filterImages(list, args[0])
			}
			switch {
			case format == "json":
				return writeJSON(g.out, list)
			case quiet:
				return printImageIDs(g.out, list, noTrunc)
			}
			return printImageTable(g.out, list, noTrunc, digestsShown)
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "", "output format: table (default) or json")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only image IDs")
	f.BoolVarP(&all, "all", "a", false, "include dangling images (no tag and no digest reference)")
	f.BoolVar(&noTrunc, "no-trunc", false, "print full image IDs")
	f.BoolVar(&digestsShown, "digests", false, "show digests")
	return cmd
}

// writeJSON prints v as indented JSON (the --format json of every verb).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// filterImages keeps images one of whose references matches pattern
// (REPOSITORY or REPOSITORY:TAG, familiar or canonical).
func filterImages(list []image.Summary, pattern string) []image.Summary {
	want, err := image.CanonicalString(pattern)
	if err != nil {
		return []image.Summary{}
	}
	repoOnly := !strings.Contains(pattern[strings.LastIndex(pattern, "/")+1:], ":") && !strings.Contains(pattern, "@")
	wantRepo := canonicalRepoOf(want)
	out := []image.Summary{}
	for _, s := range list {
		for _, r := range append(append([]string{}, s.RepoTags...), s.RepoDigests...) {
			if r == want || (repoOnly && canonicalRepoOf(r) == wantRepo) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// canonicalRepoOf strips the tag or digest from a canonical reference.
func canonicalRepoOf(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}

// imageRow is one line of `ferry images`.
type imageRow struct{ repo, tag, digest, id, created, size, upstream string }

func imageRows(list []image.Summary, noTrunc bool) []imageRow {
	var rows []imageRow
	for _, s := range list {
		id := shortID(s.ID)
		if noTrunc {
			id = s.ID.String()
		}
		base := imageRow{id: id, created: created(s.Created), size: humanSize(s.Size), digest: "<none>", repo: "<none>", tag: "<none>"}
		digests := map[string]string{} // repo → digest
		for _, d := range s.RepoDigests {
			repo, dg := splitRef(d)
			digests[repo] = dg
		}
		tagged := map[string]bool{}
		for _, t := range s.RepoTags {
			r := base
			r.repo, r.tag = splitRef(t)
			if dg, ok := digests[r.repo]; ok {
				r.digest = dg
			}
			if u, ok := s.Upstream[t]; ok {
				r.upstream = u.String()
			}
			tagged[r.repo] = true
			rows = append(rows, r)
		}
		for repo, dg := range digests {
			if !tagged[repo] {
				r := base
				r.repo, r.digest = repo, dg
				rows = append(rows, r)
			}
		}
		if len(s.RepoTags) == 0 && len(s.RepoDigests) == 0 {
			rows = append(rows, base)
		}
	}
	return rows
}

// printImageTable prints `ferry images`; an UPSTREAM column (the mirror's
// write-back state) appears when some image has one.
func printImageTable(w io.Writer, list []image.Summary, noTrunc, digests bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	rows := imageRows(list, noTrunc)
	upstream := false
	for _, r := range rows {
		upstream = upstream || r.upstream != ""
	}
	cols := []string{"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"}
	if digests {
		cols = slices.Insert(cols, 2, "DIGEST")
	}
	if upstream {
		cols = append(cols, "UPSTREAM")
	}
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for _, r := range rows {
		vals := []string{r.repo, r.tag, r.id, r.created, r.size}
		if digests {
			vals = slices.Insert(vals, 2, r.digest)
		}
		if upstream {
			vals = append(vals, cmp.Or(r.upstream, "-"))
		}
		fmt.Fprintln(tw, strings.Join(vals, "\t"))
	}
	return tw.Flush()
}

func printImageIDs(w io.Writer, list []image.Summary, noTrunc bool) error {
	for _, s := range list {
		id := shortID(s.ID)
		if noTrunc {
			id = s.ID.String()
		}
		if _, err := fmt.Fprintln(w, id); err != nil {
			return err
		}
	}
	return nil
}

// splitRef splits a canonical reference into its familiar repository and
// its tag or digest.
func splitRef(ref string) (repo, tagOrDigest string) {
	ref = image.FamiliarName(ref)
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, "<none>"
}

// created is docker's CREATED column: "3 days ago".
func created(t time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "N/A"
	}
	return humanize.Time(t)
}

// humanSize is docker's SIZE column: decimal units, "7.8MB".
func humanSize(n int64) string {
	if n < 0 {
		n = 0
	}
	return strings.ReplaceAll(humanize.Bytes(uint64(n)), " ", "")
}
