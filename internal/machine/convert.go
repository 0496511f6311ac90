package machine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/network"
	"github.com/ferryvm/ferry/internal/rootfs"
	"github.com/ferryvm/ferry/internal/vmm"
)

// The conversions between the machine's types and the guest's, the VMM's
// and the image cache's live here, one function each; convert_test.go
// fails when a field is added on one side and not carried.

// imageOf is what a machine keeps of the image ref resolved to.
func imageOf(ref string, img v1.Image, d v1.Hash) (*Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	c := cf.Config
	out := &Image{Ref: ref, Digest: d.String(), Config: guest.Image{
		Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, User: c.User, WorkingDir: c.WorkingDir}, Healthcheck: healthcheckOf(c.Healthcheck)}
	for p := range c.Volumes {
		out.Volumes = append(out.Volumes, p)
	}
	slices.Sort(out.Volumes)
	return out, nil
}

// exitFromGuest is the machine's record of an exit init reported. A
// Failure's message is not kept here: it is the start's error.
func exitFromGuest(s guest.ExitStatus) *types.Exit {
	return &types.Exit{ExitCode: s.Code, Signal: s.Signal, OOMKilled: s.OOMKilled, ExitedAt: time.Now().UTC()}
}

// guestExec is the control-protocol request for an API exec request.
func guestExec(r types.ExecRequest) guest.ExecRequest {
	return guest.ExecRequest{Argv: cloneSlice(r.Cmd), Env: cloneSlice(r.Env), User: r.User, WorkingDir: r.WorkingDir,
		TTY: r.TTY, Rows: uint16(r.Rows), Cols: uint16(r.Cols), Stdin: r.Stdin, Entrypoint: r.Entrypoint}
}

// execError gives an exec failure its kind: what init refused or could not
// start says why (a missing command is not found, a bad user or directory
// an invalid argument); anything else — the channel failing — is the
// machine being unavailable, never the caller's mistake.
func execError(what string, err error) error {
	var re *guest.RemoteError
	if errors.As(err, &re) {
		return fmt.Errorf("exec %s: %w: %w", what, err, reasonKind(re.Reason, re.Message))
	}
	return fmt.Errorf("exec %s: %w: %w", what, err, errdefs.ErrUnavailable)
}

// failureError is the error of an exec whose process init could not start.
func failureError(what string, f *guest.Failure) error {
	return fmt.Errorf("exec %s: %s: %w", what, f.Message, reasonKind(f.Reason, f.Message))
}

// reasonKind is the errdefs kind of a guest failure's reason (and message).
func reasonKind(reason, message string) error {
	if notBooted(reason, message) {
		return errdefs.ErrNotBooted
	}
	switch reason {
	case guest.ReasonNotFound:
		return errdefs.ErrNotFound
	case guest.ReasonNotExecutable, guest.ReasonUser, guest.ReasonWorkdir, guest.ReasonConfig:
		return errdefs.ErrInvalidArgument
	}
	return errdefs.ErrConflict // init refused it in the guest's present state
}

func execWhat(r types.ExecRequest) string {
	if r.Entrypoint {
		return "(attach to the entrypoint)"
	}
	return strings.Join(r.Cmd, " ")
}

// nics are the VMM's NICs for the attachment's endpoints, in guest order.
func nics(att *network.Attachment) []vmm.NIC {
	var out []vmm.NIC
	for i, e := range att.Endpoints {
		out = append(out, vmm.NIC{ID: fmt.Sprintf("eth%d", i), Tap: e.Tap, File: e.File, MAC: e.MAC})
	}
	return out
}

// endpointRequests are the network package's requests for a config's
// networks (the same fields: a conversion the compiler checks).
func endpointRequests(in []types.EndpointRequest) []network.EndpointRequest {
	var out []network.EndpointRequest
	for _, e := range in {
		r := network.EndpointRequest(e)
		r.Aliases = cloneSlice(e.Aliases)
		out = append(out, r)
	}
	return out
}

// drives are the VMM block devices for disks, in guest order, and the
// root layout init mounts from them.
func drives(d rootfs.Disks) ([]vmm.Drive, guest.Root) {
	if d.Mode == rootfs.ModePersistent {
		return []vmm.Drive{{ID: "root", Path: d.Writable}}, guest.Root{Mode: guest.RootSingle, Device: "/dev/vda"}
	}
	return []vmm.Drive{{ID: "root", Path: d.Base, ReadOnly: true}, {ID: "scratch", Path: d.Writable}},
		guest.Root{Mode: guest.RootOverlay, Device: "/dev/vda", Scratch: "/dev/vdb"}
}
