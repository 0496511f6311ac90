package qemu_test

import (
	"os"
	"testing"

	"github.com/ferryvm/ferry/internal/vmm"
)

// TestMain lets the test binary run as the console writer of the VMs its
// tests boot, as the ferry binary does.
func TestMain(m *testing.M) {
	vmm.Reexec()
	os.Exit(m.Run())
}
