package vmm

import (
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// TestUIDLock: live VMMs never share a uid, a released uid is free again,
// and a full block says so.
func TestUIDLock(t *testing.T) {
	r := UIDRange{Base: 200000, Count: 2, LockDir: filepath.Join(t.TempDir(), "uids")}
	a, fa, err := r.lock("m1")
	if err != nil {
		t.Fatal(err)
	}
	b, fb, err := r.lock("m1") // the same machine key: the next free uid
	if err != nil {
		t.Fatal(err)
	}
	if a == b || a < r.Base || b < r.Base || a >= r.Base+r.Count || b >= r.Base+r.Count {
		t.Fatalf("uids %d and %d from %d+%d", a, b, r.Base, r.Count)
	}
	if _, _, err := r.lock("m2"); err == nil {
		t.Fatal("a third uid from a block of two")
	}
	fa.Close()
	c, fc, err := r.lock("m3")
	if err != nil || c != a {
		t.Fatalf("after release: uid %d, %v; want %d again", c, err, a)
	}
	fb.Close()
	fc.Close()
	for _, bad := range []UIDRange{{Base: 0, Count: 1, LockDir: "/x"}, {Base: 1 << 30, Count: 1 << 30, LockDir: "/x"}, {Base: 5000, Count: 1, LockDir: "rel"}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestRunVMMThatDropsItself: for a wrapper that drops privileges itself
// (jailer), Run puts the allocated uid into its arguments, starts it as
// root, and returns once it runs as that uid; the uid then stays taken by
// the live process although its lock file is released, and a second VMM
// gets another.
func TestRunVMMThatDropsItself(t *testing.T) {
	prereq.Root(t, "the stand-in switches uid")
	uids := UIDRange{Base: DefaultUIDBase + 62000, Count: 4, LockDir: filepath.Join(t.TempDir(), "uids")}
	start := func() *Process {
		p := fakePlan(t, "dropper")
		p.Args = append(p.Args, "--uid", UIDArg, "--gid", GIDArg)
		p.Sandbox = &Sandbox{UIDs: uids, DropsItself: true}
		return startPlan(t, p)
	}
	a := start()
	if a.UID < uids.Base || a.UID >= uids.Base+uids.Count {
		t.Fatalf("uid %d", a.UID)
	}
	if ids := procUIDs(strconv.Itoa(a.Pid)); len(ids) != 2 || ids[0] != a.UID || ids[1] != a.UID {
		t.Fatalf("Run returned before the VMM ran as %d: %v", a.UID, ids)
	}
	if got := a.Args[len(a.Args)-1]; got != strconv.Itoa(a.UID) || slices.Contains(a.Args, UIDArg) {
		t.Fatalf("args %q: the uid was not put in", a.Args)
	}
	b := start()
	if b.UID == a.UID {
		t.Fatalf("two live VMMs got uid %d", a.UID)
	}
}
