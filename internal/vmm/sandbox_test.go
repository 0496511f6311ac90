package vmm

import (
	"path/filepath"
	"testing"
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
