package initd

import (
	"os"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

func TestReaperChildren(t *testing.T) {
	r := NewReaper()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	path, err := LookPath("sh", "/bin:/usr/bin", "/")
	prereq.Check(t, err, prereq.Remedy("sh"))
	_, ch, err := r.Spawn(path, Proc{Argv: []string{"sh", "-c", "sleep 0.3; exit 5"}, Dir: "/", Files: []*os.File{null, null, null}})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Children() {
		t.Fatal("Children() = false with a running child")
	}
	select {
	case ws := <-ch:
		if ex := exitStatus(ws); ex.Code != 5 {
			t.Fatalf("exit %+v", ex)
		}
	case <-time.After(10 * time.Second):
		r.reapAll()
		t.Fatalf("no exit status; waiters %v children %v", r.waiters, r.Children())
	}
	if r.Children() {
		t.Fatal("Children() = true after the child exited")
	}
}
