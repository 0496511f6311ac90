package types

import (
	"fmt"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// ParseVolumeSpec reads Docker's -v (and HostConfig.Binds) syntax,
// [SOURCE:]TARGET[:OPTIONS]: SOURCE is a volume name, or a host path when
// it starts with "/" or "." (relative paths are the caller's to make
// absolute: IsHostPath); no SOURCE is an anonymous volume. OPTIONS are
// comma-separated: ro, rw, and Docker's z, Z, nocopy and propagation
// options, which have no meaning here and are accepted.
func ParseVolumeSpec(s string) (Mount, error) {
	bad := func(why string) error {
		return fmt.Errorf("volume %q: %s (want [NAME|/host/dir|./dir:]/path[:ro]): %w", s, why, errdefs.ErrInvalidArgument)
	}
	parts := strings.Split(s, ":")
	var m Mount
	switch len(parts) {
	case 1:
		m.Path = parts[0]
	case 2:
		if strings.HasPrefix(parts[1], "/") {
			m.Source, m.Path = parts[0], parts[1]
		} else {
			m.Path = parts[0]
			if err := volumeOptions(&m, parts[1]); err != nil {
				return m, bad(err.Error())
			}
		}
	case 3:
		m.Source, m.Path = parts[0], parts[1]
		if err := volumeOptions(&m, parts[2]); err != nil {
			return m, bad(err.Error())
		}
	default:
		return m, bad("too many colons")
	}
	if !strings.HasPrefix(m.Path, "/") || m.Path == "/" {
		return m, bad("the target must be an absolute path other than /")
	}
	switch {
	case m.Source == "" && len(parts) > 1 && strings.HasPrefix(parts[1], "/"):
		return m, bad("empty source")
	case IsHostPath(m.Source):
		m.Type = MountBind
	default:
		m.Type, m.Volume, m.Source = MountVolume, m.Source, ""
	}
	return m, nil
}

// IsHostPath reports whether a -v source names a host directory rather
// than a volume.
func IsHostPath(src string) bool {
	return strings.HasPrefix(src, "/") || src == "." || src == ".." || strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../")
}

func volumeOptions(m *Mount, opts string) error {
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "ro", "readonly":
			m.ReadOnly = true
		case "rw":
			m.ReadOnly = false
		case "z", "Z", "nocopy", "copy", "private", "rprivate", "shared", "rshared", "slave", "rslave", "delegated", "cached", "consistent":
		default:
			return fmt.Errorf("unknown option %q", o)
		}
	}
	return nil
}
