package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/registry/store"
)

func newRegistryTokenCmd(g *globals, rf *registryFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage organization access tokens"}
	var org, scope, expires, desc, host string
	create := &cobra.Command{
		Use:   "create --org ORG",
		Short: "Create a token (printed once; only its hash is stored)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sc, err := store.ParseScope(scope)
			if err != nil {
				return err
			}
			ttl, err := parseExpiry(expires)
			if err != nil {
				return err
			}
			st, cfg, err := rf.openStore(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			t, secret, err := st.CreateToken(cmd.Context(), org, store.NewTokenOpts{Scope: sc, TTL: ttl, Description: desc})
			if err != nil {
				return err
			}
			if rf.format == "json" {
				return json.NewEncoder(g.out).Encode(struct { //nolint:gosec // G117: the new secret is shown once; printing it is this verb's job
					store.Token
					Secret string `json:"secret"`
				}{t, secret})
			}
			if host == "" {
				host = cfg.Addr
			}
			if host == "" {
				host = "127.0.0.1:5000"
			}
			exp := "never"
			if !t.ExpiresAt.IsZero() {
				exp = t.ExpiresAt.Format(time.RFC3339)
			}
			_, err = fmt.Fprintf(g.out, `token:   %s
id:      %s
org:     %s
scope:   %s
expires: %s

This is the only time the token is shown. Log in with the org name as user:
  ferry login %[6]s -u %[3]s --password-stdin
  skopeo login %[6]s -u %[3]s --password-stdin      (add --tls-verify=false for plain HTTP)
  crane auth login %[6]s -u %[3]s -p "$TOKEN"
  oras login %[6]s -u %[3]s --password-stdin         (add --plain-http for plain HTTP)
Images of this org are named %[6]s/NAME[:TAG], e.g. %[6]s/web:latest.
`, secret, t.ID, t.Org, t.Scope, exp, host)
			return err
		},
	}
	cf := create.Flags()
	cf.StringVar(&org, "org", "", "organization the token belongs to (required)")
	cf.StringVar(&scope, "scope", "push", "pull (read only) or push (read, write, delete)")
	cf.StringVar(&expires, "expires", "", "lifetime, e.g. 720h or 30d (default: never)")
	cf.StringVar(&desc, "description", "", "note to tell tokens apart in token list")
	cf.StringVar(&host, "registry", "", "registry address to show in the login hints (default: the configured addr)")
	cf.StringVar(&rf.format, "format", "", "output format: json")
	_ = create.MarkFlagRequired("org")

	var listOrg string
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return rf.withStore(cmd, func(st *store.Store) error {
				toks, err := st.Tokens(cmd.Context(), listOrg)
				if err != nil {
					return err
				}
				if rf.format == "json" {
					return json.NewEncoder(g.out).Encode(toks)
				}
				now := time.Now()
				tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tORG\tSCOPE\tSTATUS\tEXPIRES\tCREATED\tDESCRIPTION")
				for _, t := range toks {
					status := "active"
					switch {
					case !t.RevokedAt.IsZero():
						status = "revoked"
					case !t.Active(now):
						status = "expired"
					}
					exp := "never"
					if !t.ExpiresAt.IsZero() {
						exp = t.ExpiresAt.Format("2006-01-02 15:04")
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Org, t.Scope, status, exp, t.CreatedAt.Format("2006-01-02 15:04"), t.Description)
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&listOrg, "org", "", "only this organization's tokens")
	list.Flags().StringVar(&rf.format, "format", "", "output format: json")

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token at once (and every registry JWT minted from it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rf.withStore(cmd, func(st *store.Store) error {
				if err := st.RevokeToken(cmd.Context(), args[0]); err != nil {
					return err
				}
				_, err := fmt.Fprintf(g.out, "revoked token %s\n", args[0])
				return err
			})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// parseExpiry parses a Go duration or a number of days ("30d").
func parseExpiry(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("--expires %q: want e.g. 30d or 720h: %w", s, errdefs.ErrInvalidArgument)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--expires %q: want e.g. 30d or 720h: %w", s, errdefs.ErrInvalidArgument)
	}
	return d, nil
}
