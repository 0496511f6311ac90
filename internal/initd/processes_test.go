package initd

import (
	"os"
	"testing"
)

// The lister reads this test's own process like any other.
func TestProcessesFindsItself(t *testing.T) {
	ps, err := processes("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.PID == os.Getpid() {
			if p.PPID != os.Getppid() || p.UID != os.Getuid() || p.Cmd == "" || p.State == "" {
				t.Fatalf("own entry %+v", p)
			}
			return
		}
	}
	t.Fatalf("pid %d not among %d processes", os.Getpid(), len(ps))
}
