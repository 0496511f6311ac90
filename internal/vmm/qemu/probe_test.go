package qemu

import (
	"context"
	"testing"

	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
	"github.com/ferryvm/ferry/internal/testutil/prereq/vmprereq"
)

// TestProbe runs the KVM probe with the real guest kernel: whatever it
// decides, an auto driver ends up on an accelerator with a reason when it
// is TCG, and a forced accelerator is never probed.
func TestProbe(t *testing.T) {
	prereq.Tool(t, DefaultBinary)
	k := vmprereq.BuiltKernel(t, kernel.Vmlinux)
	d := New()
	accel, why := d.Probe(context.Background(), k)
	t.Logf("probe: %s (%v)", accel, why)
	if accel == AccelTCG && why == nil && d.kvm() == nil {
		t.Error("fell back to TCG without a reason")
	}
	f := New(WithAccel(AccelTCG))
	if a, _ := f.Probe(context.Background(), "/nonexistent"); a != AccelTCG || f.probed {
		t.Errorf("forced tcg: %s, probed %v", a, f.probed)
	}
}
