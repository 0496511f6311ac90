package image

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// DockerHubAuthKey is the key Docker uses for Docker Hub in config.json.
const DockerHubAuthKey = "https://index.docker.io/v1/"

// DockerConfigPath is the Docker config file: $DOCKER_CONFIG/config.json,
// else ~/.docker/config.json.
func DockerConfigPath() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/root"
	}
	return filepath.Join(home, ".docker", "config.json")
}

// AuthKey is the config.json key for server as Docker writes it: Docker
// Hub's legacy URL for "", docker.io and index.docker.io, else the bare
// host[:port].
func AuthKey(server string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
	s, _, _ = strings.Cut(s, "/")
	switch s {
	case "", "docker.io", "index.docker.io", "registry-1.docker.io":
		return DockerHubAuthKey
	}
	return s
}

// Login checks username/password against server (a registry host, or ""
// for Docker Hub) and stores them in the Docker config file
// (DockerConfigPath) exactly as `docker login` does without a credential
// store: auths[AuthKey(server)].auth = base64(user:password), every other
// key preserved, file mode 0600. Store options (WithTransport,
// WithInsecureRegistries) apply to the check.
func Login(ctx context.Context, server, username, password string, opts ...Option) error {
	o := defaultOptions()
	for _, f := range opts {
		f(&o)
	}
	key := AuthKey(server)
	host := key
	if key == DockerHubAuthKey {
		host = name.DefaultRegistry
	}
	probe := &Store{opts: o}
	var ropts []name.Option
	if probe.insecure(host) {
		ropts = append(ropts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, ropts...)
	if err != nil {
		return fmt.Errorf("login %s: invalid registry: %w: %w", server, err, errdefs.ErrInvalidArgument)
	}
	if err := checkLogin(ctx, reg, &authn.Basic{Username: username, Password: password}, o.transport); err != nil {
		return fmt.Errorf("login %s: %w", host, err)
	}
	return editAuths(func(auths map[string]map[string]any) error {
		auths[key] = map[string]any{"auth": base64.StdEncoding.EncodeToString([]byte(username + ":" + password))}
		return nil
	})
}

// checkLogin authenticates against reg's /v2/ (token exchange included).
func checkLogin(ctx context.Context, reg name.Registry, a authn.Authenticator, t http.RoundTripper) error {
	rt, err := transport.NewWithContext(ctx, reg, a, t, []string{reg.Scope(transport.PullScope)})
	if err != nil {
		return registryError(reg.String(), "", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr()), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return registryError(reg.String(), "", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("wrong username or password (401): %w", errdefs.ErrUnauthorized)
		}
		return registryError(reg.String(), "", err)
	}
	return nil
}

// Logout removes server's credentials from the Docker config file; not
// being logged in wraps errdefs.ErrNotFound.
func Logout(server string) error {
	key := AuthKey(server)
	return editAuths(func(auths map[string]map[string]any) error {
		if _, ok := auths[key]; !ok {
			return fmt.Errorf("logout: not logged in to %s: %w", key, errdefs.ErrNotFound)
		}
		delete(auths, key)
		return nil
	})
}

// editAuths rewrites the "auths" section of the Docker config atomically.
func editAuths(edit func(map[string]map[string]any) error) error {
	path := DockerConfigPath()
	doc := map[string]json.RawMessage{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read %s: %w", path, err)
	default:
		if err := json.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("%s is not valid JSON (fix or remove it): %w: %w", path, err, errdefs.ErrInvalidArgument)
		}
	}
	auths := map[string]map[string]any{}
	if raw, ok := doc["auths"]; ok {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return fmt.Errorf("%s: bad auths section: %w: %w", path, err, errdefs.ErrInvalidArgument)
		}
	}
	if err := edit(auths); err != nil {
		return err
	}
	raw, err := json.Marshal(auths)
	if err != nil {
		return err
	}
	doc["auths"] = raw
	out, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config.json.*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone after the rename; removes a failed write
	if _, err := tmp.Write(append(out, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
