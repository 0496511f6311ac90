package machine

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/network"
	"github.com/ferryvm/ferry/internal/vmm"
	"github.com/ferryvm/ferry/internal/vmm/template"
)

// A create takes a spare only when its config predicts the spare's shape
// (vCPUs, memory, NICs; no mounts, not cold); the one it took is its own
// until its start claims it, and one left unclaimed is ended with its
// placeholder files, the machine's directory kept.
func TestSpareFit(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{opt: Options{Spares: true, MachinesDir: dir}, deps: Deps{Network: &fakeNet{}}, ctx: ctx,
		warm: &warmStarts{spares: map[string]*spare{}, filling: map[string]bool{}, reserved: map[string]*spare{}}}
	key := template.Key{VCPUs: 1, MemoryMiB: 256, Layout: template.Layout{NICs: 1}}
	proc := &fakeProc{dead: make(chan struct{})}
	sp := &spare{id: "0123456789abcd", key: key, proc: proc, ctl: &fakeCtl{p: proc}}
	sp.vm.Driver, sp.vm.Spec.Dir = "qemu", filepath.Join(dir, sp.id)
	if err := os.MkdirAll(sp.vm.Spec.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{SpareName, spareDrivePrefix + "0.img", "scratch.ext4"} {
		if err := os.WriteFile(filepath.Join(sp.vm.Spec.Dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m.warm.spares[key.ID()] = sp
	defer func() { cancel(); m.wg.Wait() }() // the refill a take starts ends with the manager
	fits := types.Config{Guest: types.Guest{CPUs: 1, MemoryMB: 256}, Init: types.Init{CgroupVersion: guest.CgroupV2}}
	for name, cfg := range map[string]types.Config{
		"more memory": {Guest: types.Guest{CPUs: 1, MemoryMB: 512}},
		"two vCPUs":   {Guest: types.Guest{CPUs: 2, MemoryMB: 256}},
		"cold":        {Guest: types.Guest{CPUs: 1, MemoryMB: 256, Cold: true}},
		"a volume":    {Guest: types.Guest{CPUs: 1, MemoryMB: 256}, Mounts: []types.Mount{{Volume: "v", Path: "/data"}}},
		"two NICs":    {Guest: types.Guest{CPUs: 1, MemoryMB: 256}, Networks: []types.EndpointRequest{{Network: "a"}, {Network: "b"}}},
		"no network":  {Guest: types.Guest{CPUs: 1, MemoryMB: 256}, Networks: []types.EndpointRequest{{Network: network.NoNetwork}}},
		"firecracker": {Guest: types.Guest{CPUs: 1, MemoryMB: 256}, VMM: "firecracker"},
		"cgroup v1":   {Guest: types.Guest{CPUs: 1, MemoryMB: 256}, Init: types.Init{CgroupVersion: guest.CgroupV1}},
		"hybrid":      {Guest: types.Guest{CPUs: 1, MemoryMB: 256}, Init: types.Init{CgroupVersion: guest.CgroupHybrid}},
	} {
		if got := m.takeSpare(cfg); got != nil {
			t.Errorf("%s: took the spare of %+v", name, key)
		}
	}
	if got := m.takeSpare(fits); got != sp {
		t.Fatalf("a fitting config did not take the spare: %v", got)
	}
	if got := m.takeSpare(fits); got != nil {
		t.Fatal("one spare taken twice")
	}
	m.dropSpare(sp.id)
	select {
	case <-proc.dead:
	default:
		t.Error("an unclaimed spare's VMM still runs")
	}
	if m.reservedSpare(sp.id) != nil {
		t.Error("a dropped spare is still reserved")
	}
	for f, want := range map[string]bool{SpareName: false, spareDrivePrefix + "0.img": false, "scratch.ext4": true} {
		if _, err := os.Stat(filepath.Join(sp.vm.Spec.Dir, f)); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", f, err == nil, want)
		}
	}
	// A spare a machine created to start later holds is ended when the
	// manager closes; the machine keeps its directory.
	held := &fakeProc{dead: make(chan struct{})}
	m.warm.reserved[sp.id] = &spare{id: sp.id, key: key, vm: sp.vm, proc: held, ctl: &fakeCtl{p: held}}
	m.closeSpares()
	select {
	case <-held.dead:
	default:
		t.Error("a held spare's VMM still runs after Close")
	}
	if _, err := os.Stat(filepath.Join(sp.vm.Spec.Dir, "scratch.ext4")); err != nil {
		t.Errorf("closing removed the machine's files: %v", err)
	}
}

// A spare rehearses with the warm config of a machine of its shape that
// does not exist: its placeholder drives as an overlay root (their sizes
// sent), each NIC by its template MAC on TEST-NET addresses of its own,
// fresh entropy and a boot id, and a run config init accepts.
func TestRehearsalConfig(t *testing.T) {
	dir := t.TempDir()
	var drives []vmm.Drive
	for i, size := range []int64{1 << 20, 3 << 20} {
		p := filepath.Join(dir, fmt.Sprintf("d%d", i))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
		drives = append(drives, vmm.Drive{ID: fmt.Sprintf("d%d", i), Path: p, ReadOnly: i == 0})
	}
	vm := VM{Spec: vmm.Spec{ID: "spare1", Drives: drives, NICs: []vmm.NIC{{ID: "eth0"}, {ID: "eth1"}}}}
	w, err := rehearsalConfig(vm, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.DiskBytes, []int64{1 << 20, 3 << 20}) {
		t.Errorf("disk sizes %v", w.DiskBytes)
	}
	rc, err := w.RunConfig()
	if err != nil {
		t.Fatal(err)
	}
	if rc.Root.Mode != guest.RootOverlay || rc.Root.Device != "/dev/vda" || rc.Root.Scratch != "/dev/vdb" {
		t.Errorf("root %+v", rc.Root)
	}
	if len(rc.Network) != 2 {
		t.Fatalf("interfaces %+v", rc.Network)
	}
	seen := map[string]bool{}
	for i, ifc := range rc.Network {
		if ifc.MAC != guest.TemplateMAC(i) || ifc.Name != fmt.Sprintf("eth%d", i) {
			t.Errorf("interface %d: %+v", i, ifc)
		}
		for _, a := range ifc.Addresses {
			p := netip.MustParsePrefix(a)
			if !netip.MustParsePrefix("192.0.2.0/24").Contains(p.Addr()) && !netip.MustParsePrefix("2001:db8::/32").Contains(p.Addr()) {
				t.Errorf("interface %d: address %s is not TEST-NET", i, a)
			}
			if seen[p.Masked().String()] {
				t.Errorf("interface %d: subnet of %s is another interface's", i, a)
			}
			seen[p.Masked().String()] = true
		}
	}
	if rc.Network[0].Gateway4 != "192.0.2.1" || rc.Network[0].Gateway6 != "2001:db8::1" {
		t.Errorf("primary gateways %q %q", rc.Network[0].Gateway4, rc.Network[0].Gateway6)
	}
	w2, err := rehearsalConfig(vm, time.Now())
	if err != nil || w2.BootID == w.BootID || bytes.Equal(w2.Entropy, w.Entropy) {
		t.Errorf("two rehearsals share their boot id or entropy (%v)", err)
	}
}
