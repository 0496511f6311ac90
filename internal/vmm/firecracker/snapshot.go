package firecracker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/vmm"
)

// Warm starts (docs/warm-starts.md) under Firecracker use its snapshot
// API: a template machine runs with an API socket instead of --no-api, is
// paused (PATCH /vm) and saved (PUT /snapshot/create: a device-state file
// and a guest-memory file); a restore is a fresh Firecracker with only an
// API socket that loads the snapshot (PUT /snapshot/load) with the
// memory file mapped privately (mem_backend File: restores of one
// template share its unmodified pages), its NICs moved to the machine's
// own TAPs and its vsock to the machine's socket. The request bodies are
// the swagger's definitions (testdata/firecracker-swagger.yaml).

// APISocketName is the API socket of a template or restored machine, in
// its directory (or, jailed, at the jail's root).
const APISocketName = "firecracker.api"

// SnapshotCreateParams is the body of PUT /snapshot/create.
type SnapshotCreateParams struct {
	MemFilePath  string `json:"mem_file_path"`
	SnapshotPath string `json:"snapshot_path"`
	SnapshotType string `json:"snapshot_type,omitempty"` // Full, Diff
}

// MemoryBackend is where a restore's guest memory comes from.
type MemoryBackend struct {
	BackendType string `json:"backend_type"` // File, Uffd
	BackendPath string `json:"backend_path"`
}

// NetworkOverride moves a restored NIC to another TAP.
type NetworkOverride struct {
	IfaceID     string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
}

// VsockOverride moves a restored vsock device to another socket.
type VsockOverride struct {
	UDSPath string `json:"uds_path"`
}

// SnapshotLoadParams is the body of PUT /snapshot/load.
type SnapshotLoadParams struct {
	SnapshotPath     string            `json:"snapshot_path"`
	MemBackend       *MemoryBackend    `json:"mem_backend,omitempty"`
	ResumeVM         bool              `json:"resume_vm,omitempty"`
	NetworkOverrides []NetworkOverride `json:"network_overrides,omitempty"`
	VsockOverride    *VsockOverride    `json:"vsock_override,omitempty"`
}

// VMState is the body of PATCH /vm.
type VMState struct {
	State string `json:"state"` // Paused, Resumed
}

// Snapshot names the two files of a saved machine, as Firecracker sees
// them (inside the jail when jailed).
type Snapshot struct {
	State  string
	Memory string
}

// CreateRequest is the snapshot/create body saving to s: a full snapshot.
func CreateRequest(s Snapshot) SnapshotCreateParams {
	return SnapshotCreateParams{MemFilePath: s.Memory, SnapshotPath: s.State, SnapshotType: "Full"}
}

// LoadRequest is the snapshot/load body restoring spec from s: memory
// mapped from the file (privately: Firecracker maps a File backend
// MAP_PRIVATE), the spec's TAPs and control socket instead of the
// template's, resumed at once.
func (d *Driver) LoadRequest(spec vmm.Spec, s Snapshot) (SnapshotLoadParams, error) {
	if s.State == "" || s.Memory == "" {
		return SnapshotLoadParams{}, fmt.Errorf("firecracker: restore %s: a snapshot needs its state and memory files: %w", spec.ID, errdefs.ErrInvalidArgument)
	}
	c, err := d.Config(spec)
	if err != nil {
		return SnapshotLoadParams{}, err
	}
	p := SnapshotLoadParams{SnapshotPath: s.State, MemBackend: &MemoryBackend{BackendType: "File", BackendPath: s.Memory}, ResumeVM: true}
	for _, n := range c.NetworkInterfaces {
		p.NetworkOverrides = append(p.NetworkOverrides, NetworkOverride{IfaceID: n.IfaceID, HostDevName: n.HostDevName})
	}
	if c.Vsock != nil {
		p.VsockOverride = &VsockOverride{UDSPath: c.Vsock.UDSPath}
	}
	return p, nil
}

// PlanTemplate is Plan for a template machine: the same config, and an API
// socket (APISocketName) instead of --no-api, to pause and save it.
func (d *Driver) PlanTemplate(spec vmm.Spec) (*vmm.Plan, error) {
	p, err := d.Plan(spec)
	if err != nil {
		return nil, err
	}
	i := slices.Index(p.Args, "--no-api")
	if i < 0 {
		return nil, fmt.Errorf("firecracker: plan %s has no --no-api to replace", spec.ID)
	}
	p.Args = slices.Replace(p.Args, i, i+1, "--api-sock", d.apiSocket(spec))
	return p, nil
}

// PlanRestore is Plan for a machine restored from a snapshot: Firecracker
// with an API socket and no config (snapshot/load is accepted only on a
// fresh process), everything else as Plan has it.
func (d *Driver) PlanRestore(spec vmm.Spec) (*vmm.Plan, error) {
	p, err := d.PlanTemplate(spec)
	if err != nil {
		return nil, err
	}
	i := slices.Index(p.Args, "--config-file")
	if i < 0 || i+1 >= len(p.Args) {
		return nil, fmt.Errorf("firecracker: plan %s has no --config-file", spec.ID)
	}
	p.Args = slices.Delete(p.Args, i, i+2)
	p.Files = slices.DeleteFunc(p.Files, func(f vmm.File) bool { return strings.HasSuffix(f.Path, ConfigFile) })
	return p, nil
}

// apiSocket is the API socket's path as Firecracker opens it.
func (d *Driver) apiSocket(spec vmm.Spec) string {
	if d.jailer != nil {
		return "/" + APISocketName
	}
	return spec.Dir + "/" + APISocketName
}

// HostAPISocket is the API socket's path on the host.
func (d *Driver) HostAPISocket(spec vmm.Spec) string {
	if d.jailer != nil {
		return d.chrootRoot(spec) + "/" + APISocketName
	}
	return spec.Dir + "/" + APISocketName
}

// SaveSnapshot pauses the template machine behind the API socket sock and
// writes its snapshot to s; the machine stays paused.
func SaveSnapshot(ctx context.Context, sock string, s Snapshot) error {
	a := apiClient(sock)
	if err := a.call(ctx, http.MethodPatch, "/vm", VMState{State: "Paused"}); err != nil {
		return fmt.Errorf("firecracker: pause: %w", err)
	}
	if err := a.call(ctx, http.MethodPut, "/snapshot/create", CreateRequest(s)); err != nil {
		return fmt.Errorf("firecracker: snapshot: %w", err)
	}
	return nil
}

// LoadSnapshot restores a fresh Firecracker behind sock with p (made by
// LoadRequest), waiting for its API socket to appear.
func LoadSnapshot(ctx context.Context, sock string, p SnapshotLoadParams) error {
	if err := apiClient(sock).call(ctx, http.MethodPut, "/snapshot/load", p); err != nil {
		return fmt.Errorf("firecracker: load snapshot: %w", err)
	}
	return nil
}

// api is Firecracker's HTTP API on its unix socket.
type api struct{ c *http.Client }

func apiClient(sock string) api {
	return api{c: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			for {
				c, err := d.DialContext(ctx, "unix", sock)
				if err == nil || ctx.Err() != nil {
					return c, err
				}
				select { // the socket appears once Firecracker has started
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(5 * time.Millisecond):
				}
			}
		},
	}}}
}

// call sends body to path and expects 204; an error carries the
// fault_message Firecracker answered with.
func (a api) call(ctx context.Context, method, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://localhost"+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := a.c.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w: %w", method, path, err, errdefs.ErrUnavailable)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusOK {
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	var e struct {
		FaultMessage string `json:"fault_message"`
	}
	if json.Unmarshal(msg, &e) == nil && e.FaultMessage != "" {
		msg = []byte(e.FaultMessage)
	}
	return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
}
