package compose

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	ctypes "github.com/compose-spec/compose-go/v2/types"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// A service's secrets and configs reach its machines as read-only files:
// compose stages a copy of each on the host, one directory per guest
// directory the files land in, and bind-mounts that directory read-only.
// A secret lands in /run/secrets/NAME (or its target, relative to
// /run/secrets); a config at its target (default /NAME).

// StageDir is where the staged files of every project live, a directory
// per project (removed by Down).
func StageDir() string {
	if d := os.Getenv("FERRY_COMPOSE_STATE"); d != "" {
		return d
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "ferry", "compose")
}

// stagedDir is one guest directory of a service's files.
type stagedDir struct {
	Host  string            // the host directory staged (bind mount source)
	Guest string            // where it is mounted
	Files map[string][]byte // base name -> content
}

// secretFiles reads sc's secrets and configs, grouped by the guest
// directory they land in (written to the host by stage).
func secretFiles(proj *ctypes.Project, sc ctypes.ServiceConfig) ([]stagedDir, error) {
	byDir := map[string]map[string][]byte{}
	add := func(kind, source, target string, obj ctypes.FileObjectConfig) error {
		if bool(obj.External) {
			return fmt.Errorf("%s %s: external %ss are not supported: %w", kind, source, kind, errdefs.ErrInvalidArgument)
		}
		var data []byte
		switch {
		case obj.File != "":
			b, err := os.ReadFile(obj.File)
			if err != nil {
				return fmt.Errorf("%s %s: %w: %w", kind, source, err, errdefs.ErrInvalidArgument)
			}
			data = b
		case obj.Environment != "":
			v, ok := proj.Environment[obj.Environment]
			if !ok {
				return fmt.Errorf("%s %s: environment variable %s is not set: %w", kind, source, obj.Environment, errdefs.ErrInvalidArgument)
			}
			data = []byte(v)
		default:
			data = []byte(obj.Content)
		}
		dir, base := path.Split(path.Clean(target))
		dir = path.Clean(dir)
		if dir == "/" || base == "" {
			return fmt.Errorf("%s %s: target %s: a file directly in / cannot be mounted; give it a target in a directory (target: /etc/app/%s): %w", kind, source, target, source, errdefs.ErrInvalidArgument)
		}
		if byDir[dir] == nil {
			byDir[dir] = map[string][]byte{}
		}
		if _, dup := byDir[dir][base]; dup {
			return fmt.Errorf("%s %s: target %s is used twice: %w", kind, source, target, errdefs.ErrInvalidArgument)
		}
		byDir[dir][base] = data
		return nil
	}
	for _, s := range sc.Secrets {
		obj, ok := proj.Secrets[s.Source]
		if !ok {
			return nil, fmt.Errorf("secret %s: not declared in the top-level secrets: %w", s.Source, errdefs.ErrInvalidArgument)
		}
		target := s.Target
		if target == "" {
			target = s.Source
		}
		if !path.IsAbs(target) {
			target = path.Join("/run/secrets", target)
		}
		if err := add("secret", s.Source, target, ctypes.FileObjectConfig(obj)); err != nil {
			return nil, err
		}
	}
	for _, c := range sc.Configs {
		obj, ok := proj.Configs[c.Source]
		if !ok {
			return nil, fmt.Errorf("config %s: not declared in the top-level configs: %w", c.Source, errdefs.ErrInvalidArgument)
		}
		target := c.Target
		if target == "" {
			target = "/" + c.Source
		}
		if err := add("config", c.Source, target, ctypes.FileObjectConfig(obj)); err != nil {
			return nil, err
		}
	}
	var out []stagedDir
	for _, dir := range slices.Sorted(mapKeys(byDir)) {
		key := sha256.Sum256([]byte(dir))
		out = append(out, stagedDir{
			Host:  filepath.Join(StageDir(), proj.Name, sc.Name, hex.EncodeToString(key[:8])),
			Guest: dir, Files: byDir[dir],
		})
	}
	return out, nil
}

// stagedMounts are the read-only bind mounts of ds.
func stagedMounts(ds []stagedDir) []types.Mount {
	var out []types.Mount
	for _, d := range ds {
		out = append(out, types.Mount{Type: types.MountBind, Source: d.Host, Path: d.Guest, ReadOnly: true})
	}
	return out
}

// digest sums the staged files' names and contents (for the config hash).
func digest(ds []stagedDir) string {
	h := sha256.New()
	for _, d := range ds {
		for _, name := range slices.Sorted(mapKeys(d.Files)) {
			fmt.Fprintf(h, "%s/%s\x00%d\x00", d.Guest, name, len(d.Files[name]))
			h.Write(d.Files[name])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// stage writes ds's files to the host. The directories are kept (a
// running machine's share stays valid); each file is replaced whole and
// files no longer wanted are removed.
func stage(ds []stagedDir) error {
	for _, d := range ds {
		if err := os.MkdirAll(d.Host, 0o755); err != nil {
			return fmt.Errorf("stage %s: %w", d.Guest, err)
		}
		for name, data := range d.Files {
			tmp := filepath.Join(d.Host, "."+name+".tmp")
			if err := os.WriteFile(tmp, data, 0o444); err != nil {
				return fmt.Errorf("stage %s: %w", d.Guest, err)
			}
			if err := os.Rename(tmp, filepath.Join(d.Host, name)); err != nil {
				os.Remove(tmp)
				return fmt.Errorf("stage %s: %w", d.Guest, err)
			}
		}
		// A directory mounted inside this one needs its mount point here:
		// the guest cannot make it in a read-only share.
		for _, inner := range ds {
			if rel, ok := strings.CutPrefix(inner.Guest, d.Guest+"/"); ok {
				if err := os.MkdirAll(filepath.Join(d.Host, filepath.FromSlash(rel)), 0o755); err != nil {
					return fmt.Errorf("stage %s: %w", inner.Guest, err)
				}
			}
		}
		have, err := os.ReadDir(d.Host)
		if err != nil {
			return fmt.Errorf("stage %s: %w", d.Guest, err)
		}
		for _, e := range have {
			if _, ok := d.Files[e.Name()]; !ok && !e.IsDir() {
				os.Remove(filepath.Join(d.Host, e.Name()))
			}
		}
	}
	return nil
}
