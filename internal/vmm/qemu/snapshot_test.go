package qemu

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/vmm"
)

// A template's plan always has a QMP monitor (once, also when a resizable
// drive brought one already) and its guest RAM in the given memfd, mapped
// shared; a restore's plan maps the template's memory private, adds the
// state as a read-only inherited descriptor and waits for it (-incoming
// defer: StartRestore sets x-ignore-shared, then migrate-incoming fd:N),
// and the descriptors stay numbered 3, 4, ... in order.
func TestPlanTemplateAndRestore(t *testing.T) {
	d := sandboxed(WithAccel(AccelTCG))
	mem, err := os.CreateTemp(t.TempDir(), "mem")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	for _, resizable := range []bool{false, true} {
		spec := testSpec(t)
		spec.Drives[1].Resizable = resizable
		tp, err := d.PlanTemplate(spec, mem)
		if err != nil {
			t.Fatal(err)
		}
		if n := count(tp.Args, "-mon"); n != 1 {
			t.Errorf("resizable=%v: %d QMP monitors in %q", resizable, n, tp.Args)
		}
		if slices.Contains(tp.Args, "-incoming") {
			t.Error("a template's plan has -incoming")
		}
		memFD := -1
		for _, x := range tp.Extra {
			if x.Name == "memory" && x.File == mem {
				memFD = x.FD
			}
		}
		wantObj := "memory-backend-file,id=mem,mem-path=/proc/self/fd/" + strconv.Itoa(memFD) + ",size=" + strconv.Itoa(spec.MemoryMiB) + "M,share=on"
		if memFD < 0 || !slices.Contains(tp.Args, wantObj) || !strings.Contains(tp.Args[slices.Index(tp.Args, "-M")+1], ",memory-backend=mem") {
			t.Errorf("template plan does not map its memory shared (%s): %q", wantObj, tp.Args)
		}
		rp, err := d.PlanRestore(spec, "/var/lib/ferry/vm-templates/abc/state", mem)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.Index(rp.Args, "-incoming")
		if i < 0 || rp.Args[i+1] != "defer" {
			t.Fatalf("restore plan lacks -incoming defer: %q", rp.Args)
		}
		fd, err := incomingFD(rp)
		if err != nil {
			t.Fatal(err)
		}
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
		// Everything but -incoming and the mapping's share= is the
		// template's own command line: the restored devices must be the
		// saved ones.
		want := slices.Clone(tp.Args)
		want[slices.Index(want, wantObj)] = strings.TrimSuffix(wantObj, "share=on") + "share=off"
		if !slices.Equal(rp.Args[:i], want) {
			t.Errorf("restore args differ from the template's:\n%q\n%q", rp.Args[:i], want)
		}
		if rp.Sandbox == nil {
			t.Error("restore plan is not sandboxed")
		}
	}
	if _, err := d.PlanRestore(testSpec(t), "", nil); err == nil {
		t.Error("a restore without a state was planned")
	}
	shares := testSpec(t)
	shares.Shares = []vmm.Share{{Tag: "data", Source: t.TempDir()}}
	if _, err := d.PlanTemplate(shares, mem); err == nil {
		t.Error("a machine with bind mounts (its own shared memfd) was given template memory")
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
