package vmm_test

import (
	"os"
	"testing"

	"github.com/ferryvm/ferry/internal/vmm"
)

// TestMain lets the benchmark binary run as its VMs' console writer, as
// ferry does.
func TestMain(m *testing.M) {
	vmm.Reexec()
	os.Exit(m.Run())
}
