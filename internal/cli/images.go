package cli

import (
	"encoding/json"
	"fmt"
	"io"
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
type imageRow struct{ repo, tag, digest, id, created, size string }

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

func printImageTable(w io.Writer, list []image.Summary, noTrunc, digests bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	if digests {
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE")
	} else {
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
	}
	for _, r := range imageRows(list, noTrunc) {
		if digests {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.repo, r.tag, r.digest, r.id, r.created, r.size)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.repo, r.tag, r.id, r.created, r.size)
		}
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
