package dockerapi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// Docker IDs are 64 hex digits; a machine's is shorter (14). A container's
// ID is the machine's followed by the start of a hash of it, so the short
// forms both tools print are the same and either resolves.

// containerID is machine id's Docker ID.
func containerID(id string) string {
	if len(id) >= 64 {
		return id
	}
	h := sha256.Sum256([]byte("ferry-container:" + id))
	return id + hex.EncodeToString(h[:])[:64-len(id)]
}

// machineRef turns a reference a Docker client sends (a name, "/name", an ID
// or ID prefix of either length) into one the machine manager resolves.
func machineRef(ref string) string {
	ref = strings.TrimPrefix(ref, "/")
	if len(ref) <= 14 || !isHex(ref) {
		return ref
	}
	for n := 1; n < len(ref) && n < 64; n++ {
		if strings.HasPrefix(containerID(ref[:n]), ref) {
			return ref[:n]
		}
	}
	return ref
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

// container finds the machine behind a Docker reference, answering Docker's
// "No such container" when there is none.
func (s *Server) container(ref string) (*types.Machine, error) {
	m, err := s.cfg.Machines.Get("", machineRef(ref))
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, notFound("No such container: %s", ref)
	}
	return m, err
}

// containerErr rewrites a machine manager's not-found for ref in Docker's
// words.
func containerErr(ref string, err error) error {
	if errors.Is(err, errdefs.ErrNotFound) {
		return notFound("No such container: %s", ref)
	}
	return err
}
