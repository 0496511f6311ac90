package cli

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/image"
)

func newPullCmd(g *globals) *cobra.Command {
	var req api.PullRequest
	var quiet bool
	cmd := &cobra.Command{
		Use:   "pull [--platform os/arch] IMAGE",
		Short: "Pull an image from a registry into the cache",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			req.Ref = args[0]
			if req.Auth, err = callerAuth(req.Ref); err != nil {
				return err
			}
			if !quiet {
				printPulling(g, req.Ref)
			}
			view := newProgressView(g.out, false, quiet)
			res, err := c.Pull(cmd.Context(), req, view.update)
			view.finish(err == nil)
			if err != nil {
				return err
			}
			return printPulled(g, res, quiet)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Platform, "platform", "", "platform to pull from a multi-platform image (os/arch[/variant]); default: the daemon's")
	f.StringSliceVar(&req.InsecureRegistries, "insecure-registry", nil, "reach this registry (host[:port]) over plain HTTP (the daemon must allow it)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the image reference")
	return cmd
}

// printPulling starts a pull the way docker pull does: "v1: Pulling from
// library/alpine".
func printPulling(g *globals, ref string) {
	r, err := image.ParseReference(ref)
	if err != nil {
		return // the daemon reports the bad reference
	}
	id := r.Identifier()
	if len(id) > 19 && strings.HasPrefix(id, "sha256:") {
		id = id[:19]
	}
	fmt.Fprintf(g.out, "%s: Pulling from %s\n", id, r.Context().RepositoryStr())
}

// printPulled ends a pull the way docker pull does.
func printPulled(g *globals, res image.PullResult, quiet bool) error {
	if !quiet {
		status := "Downloaded newer image for"
		if res.BlobsFetched == 0 {
			status = "Image is up to date for"
		}
		fmt.Fprintf(g.out, "Digest: %s\nStatus: %s %s\n", res.Image.ID, status, image.FamiliarName(res.Ref))
	}
	_, err := fmt.Fprintln(g.out, res.Ref)
	return err
}

// callerAuth resolves the caller's credentials for ref's registry from the
// CLI's own keychain (~/.docker/config.json, credential helpers), to be
// handed to the daemon. nil means anonymous here: the daemon then tries its
// own keychain.
func callerAuth(ref string) (*api.RegistryAuth, error) {
	r, err := image.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	a, err := authn.DefaultKeychain.Resolve(r.Context().Registry)
	if err != nil {
		return nil, fmt.Errorf("read credentials for %s: %w", r.Context().RegistryStr(), err)
	}
	if a == authn.Anonymous {
		return nil, nil
	}
	cfg, err := a.Authorization()
	if err != nil {
		return nil, fmt.Errorf("read credentials for %s: %w", r.Context().RegistryStr(), err)
	}
	out := &api.RegistryAuth{Username: cfg.Username, Password: cfg.Password,
		IdentityToken: cfg.IdentityToken, RegistryToken: cfg.RegistryToken}
	if *out == (api.RegistryAuth{}) {
		return nil, nil
	}
	return out, nil
}
