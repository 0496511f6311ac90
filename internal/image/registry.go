package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// client talks to one repository of one registry with an authenticated
// transport (anonymous token, basic or bearer, per the registry's challenge).
type client struct {
	repo name.Repository
	http *http.Client
}

func (s *Store) authFor(ctx context.Context, repo name.Repository, auth authn.Authenticator) (authn.Authenticator, error) {
	if auth != nil {
		return auth, nil
	}
	a, err := authn.Resolve(ctx, s.opts.keychain, repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repo.RegistryStr(), err)
	}
	return a, nil
}

func (s *Store) newClient(ctx context.Context, repo name.Repository, auth authn.Authenticator, scope string) (*client, error) {
	a, err := s.authFor(ctx, repo, auth)
	if err != nil {
		return nil, err
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, a, s.opts.transport, []string{repo.Scope(scope)})
	if err != nil {
		return nil, registryError(repo.String(), "", err)
	}
	return &client{repo: repo, http: &http.Client{Transport: rt}}, nil
}

func (c *client) url(kind, ref string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s/%s", c.repo.Scheme(), c.repo.RegistryStr(), c.repo.RepositoryStr(), kind, ref)
}

var acceptManifests = strings.Join([]string{
	string(types.OCIImageIndex), string(types.OCIManifestSchema1),
	string(types.DockerManifestList), string(types.DockerManifestSchema2),
}, ", ")

// manifest fetches a manifest or index by tag or digest, bounded in size and
// verified against the digest when one was asked for.
func (c *client) manifest(ctx context.Context, ref string) ([]byte, v1.Hash, error) {
	//nolint:gosec // fetching from the registry the user named is the point
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("manifests", ref), nil)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	req.Header.Set("Accept", acceptManifests)
	resp, err := c.http.Do(req) //nolint:gosec // as above
	if err != nil {
		return nil, v1.Hash{}, registryError(c.repo.String()+":"+ref, "", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, v1.Hash{}, registryError(c.repo.String()+":"+ref, "", err)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return nil, v1.Hash{}, registryError(c.repo.String()+":"+ref, "", err)
	}
	if len(raw) > MaxManifestSize {
		return nil, v1.Hash{}, fmt.Errorf("manifest %s:%s is over %d bytes: %w", c.repo, ref, MaxManifestSize, ErrUnsupported)
	}
	sum := sha256.Sum256(raw)
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if want, err := v1.NewHash(ref); err == nil && want != d {
		return nil, v1.Hash{}, fmt.Errorf("manifest %s@%s: registry sent content hashing to %s (corrupt or tampered; retry, or report it to the registry): %w", c.repo, want, d, errdefs.ErrInvalidArgument)
	}
	return raw, d, nil
}

// blob opens blob d from byte offset (0: whole blob). partial reports
// whether the registry honoured the Range request (206).
func (c *client) blob(ctx context.Context, d v1.Hash, offset, size int64) (body io.ReadCloser, partial bool, err error) {
	//nolint:gosec // fetching from the registry the user named is the point
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("blobs", d.String()), nil)
	if err != nil {
		return nil, false, err
	}
	if offset > 0 {
		// An explicit end: some registries reject open-ended ranges.
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", offset, size-1))
	}
	resp, err := c.http.Do(req) //nolint:gosec // as in manifest: the registry the user named
	if err != nil {
		return nil, false, registryError(c.repo.String(), d.String(), err)
	}
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0 {
		_ = resp.Body.Close()
		return c.blob(ctx, d, 0, size) // cannot resume: start over
	}
	if err := transport.CheckError(resp, http.StatusOK, http.StatusPartialContent); err != nil {
		_ = resp.Body.Close()
		return nil, false, registryError(c.repo.String(), d.String(), err)
	}
	return resp.Body, resp.StatusCode == http.StatusPartialContent, nil
}

// registryError turns a registry/transport failure into one clear line
// wrapped with an errdefs kind. blob is the digest being fetched, if any.
func registryError(ref, blob string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	what := ref
	if blob != "" {
		what = fmt.Sprintf("blob %s of %s", blob, ref)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch code := te.StatusCode; {
		case code == http.StatusUnauthorized:
			return fmt.Errorf("%s: registry denied access (401 unauthorized): log in with `ferry login %s` or check the name: %w", what, registryOf(ref), errdefs.ErrUnauthorized)
		case code == http.StatusForbidden:
			return fmt.Errorf("%s: registry forbids access (403 forbidden): check your account's permissions on this repository: %w", what, errdefs.ErrUnauthorized)
		case code == http.StatusNotFound && blob != "":
			return fmt.Errorf("%s: the registry does not have this blob although the manifest references it (404; the image is broken upstream: re-push it): %w", what, errdefs.ErrNotFound)
		case code == http.StatusNotFound:
			return fmt.Errorf("%s: manifest not found (404): check the repository name and tag: %w", what, errdefs.ErrNotFound)
		case code == http.StatusTooManyRequests:
			return fmt.Errorf("%s: registry rate limit hit (429 too many requests): wait and retry, or log in for a higher limit: %w", what, errdefs.ErrUnavailable)
		case code >= 500:
			return fmt.Errorf("%s: registry error (%d %s): retry later: %w", what, code, http.StatusText(code), errdefs.ErrUnavailable)
		}
		return fmt.Errorf("%s: registry answered %d %s: %w", what, te.StatusCode, http.StatusText(te.StatusCode), errdefs.ErrUnavailable)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) {
		return fmt.Errorf("%s: cannot reach the registry (%w): check the address and network, or --insecure-registry for a plain-HTTP registry: %w", what, err, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("%s: %w: %w", what, err, errdefs.ErrUnavailable)
}

func registryOf(ref string) string {
	if r, err := name.ParseReference(ref); err == nil {
		return r.Context().RegistryStr()
	}
	if r, err := name.NewRepository(ref); err == nil {
		return r.RegistryStr()
	}
	return ref
}
