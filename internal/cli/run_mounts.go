package cli

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// runMountFlags are run's mount flags (Docker's names).
type runMountFlags struct {
	volumes, mounts, tmpfs []string
}

func (f *runMountFlags) add(fl *pflag.FlagSet) {
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "mount a volume or host directory: NAME:/path[:ro] (created on first use), /host/dir:/path[:ro], ./dir:/path, or /path (anonymous volume)")
	fl.StringArrayVar(&f.mounts, "mount", nil, "mount: type=volume|bind|tmpfs,source=...,target=/path[,readonly][,tmpfs-size=64m][,volume-size=10g]")
	fl.StringArrayVar(&f.tmpfs, "tmpfs", nil, "mount a tmpfs: /path[:size=64m][,ro]")
}

// config turns the flags into mounts; relative host paths are made
// absolute against the current directory (the daemon runs elsewhere).
func (f *runMountFlags) config() ([]types.Mount, error) {
	var out []types.Mount
	for _, s := range f.volumes {
		m, err := types.ParseVolumeSpec(s)
		if err != nil {
			return nil, fmt.Errorf("-v: %w", err)
		}
		out = append(out, m)
	}
	for _, s := range f.mounts {
		m, err := parseMountFlag(s)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	for _, s := range f.tmpfs {
		m, err := parseTmpfsFlag(s)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	for i := range out {
		if out[i].Kind() == types.MountBind && !filepath.IsAbs(out[i].Source) {
			abs, err := filepath.Abs(out[i].Source)
			if err != nil {
				return nil, fmt.Errorf("bind mount %s: %w", out[i].Source, err)
			}
			out[i].Source = abs
		}
	}
	return out, nil
}

// parseMountFlag reads Docker's --mount key=value list.
func parseMountFlag(s string) (types.Mount, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("--mount %q: %s: %w", s, fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
	}
	m := types.Mount{Type: types.MountVolume}
	for _, kv := range strings.Split(s, ",") {
		k, v, hasV := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "type":
			switch v {
			case types.MountVolume, types.MountBind, types.MountTmpfs:
				m.Type = v
			default:
				return m, bad("type %q: want volume, bind or tmpfs", v)
			}
		case "source", "src":
			m.Source = v
		case "target", "destination", "dst":
			m.Path = v
		case "readonly", "ro":
			ro := true
			if hasV {
				var err error
				if ro, err = strconv.ParseBool(v); err != nil {
					return m, bad("readonly=%q: want true or false", v)
				}
			}
			m.ReadOnly = ro
		case "tmpfs-size", "volume-size":
			mb, err := parseMemoryMB(v)
			if err != nil {
				return m, bad("%s=%q: want a size like 64m or 10g", k, v)
			}
			m.SizeMB = mb
		case "volume-encrypted":
			e, err := strconv.ParseBool(v)
			if err != nil {
				return m, bad("volume-encrypted=%q: want true or false", v)
			}
			m.Encrypted = &e
		case "tmpfs-mode", "volume-nocopy", "bind-propagation", "consistency":
			// Docker's; nothing to do here.
		default:
			return m, bad("unknown key %q", k)
		}
	}
	if m.Path == "" {
		return m, bad("target=/path is required")
	}
	switch m.Type {
	case types.MountVolume:
		if types.IsHostPath(m.Source) {
			return m, bad("source %s is a path: use type=bind", m.Source)
		}
		m.Volume, m.Source = m.Source, ""
	case types.MountBind:
		if m.Source == "" {
			return m, bad("a bind mount needs source=/host/dir")
		}
	case types.MountTmpfs:
		if m.Source != "" {
			return m, bad("a tmpfs has no source")
		}
	}
	return m, nil
}

// parseTmpfsFlag reads Docker's --tmpfs /path[:options].
func parseTmpfsFlag(s string) (types.Mount, error) {
	p, opts, _ := strings.Cut(s, ":")
	m := types.Mount{Type: types.MountTmpfs, Path: p}
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "":
		case "size":
			mb, err := parseMemoryMB(v)
			if err != nil {
				return m, fmt.Errorf("--tmpfs %q: size=%q: want a size like 64m: %w", s, v, errdefs.ErrInvalidArgument)
			}
			m.SizeMB = mb
		case "ro":
			m.ReadOnly = true
		case "rw", "mode", "exec", "noexec", "suid", "nosuid", "dev", "nodev":
		default:
			return m, fmt.Errorf("--tmpfs %q: unknown option %q (size=, ro): %w", s, k, errdefs.ErrInvalidArgument)
		}
	}
	return m, nil
}
