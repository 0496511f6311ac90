package qemu

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/vmm"
)

// A template's plan always has a QMP monitor (once, also when a resizable
// drive brought one already); a restore's plan adds the state as a
// read-only inherited descriptor named by -incoming fd:N, and the
// descriptors stay numbered 3, 4, ... in order.
func TestPlanTemplateAndRestore(t *testing.T) {
	d := sandboxed(WithAccel(AccelTCG))
	for _, resizable := range []bool{false, true} {
		spec := testSpec(t)
		spec.Drives[1].Resizable = resizable
		tp, err := d.PlanTemplate(spec)
		if err != nil {
			t.Fatal(err)
		}
		if n := count(tp.Args, "-mon"); n != 1 {
			t.Errorf("resizable=%v: %d QMP monitors in %q", resizable, n, tp.Args)
		}
		if slices.Contains(tp.Args, "-incoming") {
			t.Error("a template's plan has -incoming")
		}
		rp, err := d.PlanRestore(spec, "/var/lib/ferry/vm-templates/abc/state")
		if err != nil {
			t.Fatal(err)
		}
		i := slices.Index(rp.Args, "-incoming")
		if i < 0 || !strings.HasPrefix(rp.Args[i+1], "fd:") {
			t.Fatalf("restore plan lacks -incoming fd:N: %q", rp.Args)
		}
		fd, _ := strconv.Atoi(strings.TrimPrefix(rp.Args[i+1], "fd:"))
		var state *vmm.ExtraFile
		for j, x := range rp.Extra {
			if x.FD != 3+j {
				t.Errorf("descriptor %d numbered %d", j, x.FD)
			}
			if x.Name == "template" {
				state = &rp.Extra[j]
			}
		}
		if state == nil || state.FD != fd || state.Path != "/var/lib/ferry/vm-templates/abc/state" || state.Write {
			t.Errorf("state descriptor = %+v, want fd %d read-only", state, fd)
		}
		// Everything but -incoming is the template's own command line: the
		// restored devices must be the saved ones.
		if !slices.Equal(rp.Args[:i], tp.Args) {
			t.Errorf("restore args differ from the template's:\n%q\n%q", rp.Args[:i], tp.Args)
		}
		if rp.Sandbox == nil {
			t.Error("restore plan is not sandboxed")
		}
	}
	if _, err := d.PlanRestore(testSpec(t), ""); err == nil {
		t.Error("a restore without a state was planned")
	}
}

func count(a []string, s string) int {
	n := 0
	for _, x := range a {
		if x == s {
			n++
		}
	}
	return n
}
