package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ferryvm/ferry/internal/errdefs"
)

func writeModTree(t *testing.T, dep, builtin string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte(builtin), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

const testDep = `kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/net/vmw_vsock/vsock.ko:
kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko: kernel/net/vmw_vsock/vsock.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko: kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko kernel/net/vmw_vsock/vsock.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/fs/overlayfs/overlay.ko:
`

func TestModuleClosureOrdersDependenciesFirst(t *testing.T) {
	dir := writeModTree(t, testDep, "kernel/fs/ext4/ext4.ko\n")
	got, err := ModuleClosure(dir, []string{"virtio-mmio", "virtio_blk", "ext4", "vmw_vsock_virtio_transport", "overlay"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/drivers/virtio/virtio.ko",
		"kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/virtio/virtio_mmio.ko",
		"kernel/drivers/block/virtio_blk.ko",
		"kernel/net/vmw_vsock/vsock.ko",
		"kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
		"kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko",
		"kernel/fs/overlayfs/overlay.ko",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("closure:\n%q\nwant:\n%q", got, want)
	}
}

func TestModuleClosureErrors(t *testing.T) {
	dir := writeModTree(t, testDep, "")
	if _, err := ModuleClosure(dir, []string{"nope"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown module: err = %v, want not found", err)
	}
	cyc := writeModTree(t, "a.ko: b.ko\nb.ko: a.ko\n", "")
	if _, err := ModuleClosure(cyc, []string{"a"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("cycle: err = %v, want invalid argument", err)
	}
	if _, err := ModuleClosure(t.TempDir(), []string{"a"}); err == nil {
		t.Error("missing modules.dep: no error")
	}
}
