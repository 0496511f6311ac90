package vmm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// TestMain lets the test binary stand in for a VMM: with
// FERRY_FAKE_VMM set it behaves as told and exits.
func TestMain(m *testing.M) {
	Reexec() // the test binary is its own console writer
	switch os.Getenv("FERRY_FAKE_VMM") {
	case "":
		os.Exit(m.Run())
	case "flood":
		// A guest writing its console without a newline: FERRY_FLOOD
		// bytes, then one last line.
		n, _ := strconv.Atoi(os.Getenv("FERRY_FLOOD"))
		chunk := []byte(strings.Repeat("x", 64<<10))
		for ; n > 0; n -= len(chunk) {
			os.Stdout.Write(chunk[:min(n, len(chunk))])
		}
		fmt.Println("\nflood done")
	case "daemon":
		// A daemon that starts a flooding VMM and dies at once.
		var plan Plan
		if err := json.Unmarshal([]byte(os.Getenv("FERRY_PLAN")), &plan); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if _, err := Run(context.Background(), &plan); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case "dropper":
		// A wrapper that switches to the uid in its arguments itself, as
		// jailer does (after a moment of root work).
		time.Sleep(50 * time.Millisecond)
		uid, _ := strconv.Atoi(os.Args[len(os.Args)-1])
		if err := syscall.Setgid(uid); err != nil {
			os.Exit(3)
		}
		if err := syscall.Setuid(uid); err != nil {
			os.Exit(4)
		}
		fmt.Println("ready")
		time.Sleep(30 * time.Second)
	case "fds":
		// Reports what it inherited, then waits to be killed.
		for fd := 3; fd < 12; fd++ {
			if target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); err == nil {
				fmt.Printf("fd %d %s\n", fd, target)
			}
		}
		fmt.Println("ready")
		time.Sleep(30 * time.Second)
	case "sleep":
		time.Sleep(30 * time.Second)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(30 * time.Second)
	case "exit7":
		os.Exit(7)
	}
	os.Exit(0)
}

// fakePlan is a Plan that runs this test binary as a fake VMM.
func fakePlan(t *testing.T, mode string) *Plan {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return &Plan{
		Driver:  "test",
		Path:    exe,
		Args:    []string{exe, "-test.run=^$", "ferry-test"},
		Env:     []string{"FERRY_FAKE_VMM=" + mode},
		Stdout:  filepath.Join(dir, "vmm.log"),
		Stderr:  filepath.Join(dir, "vmm.log"),
		PIDFile: filepath.Join(dir, "vmm.pid"),
		Marker:  "ferry-test",
	}
}

func startPlan(t *testing.T, p *Plan) *Process {
	t.Helper()
	proc, err := Run(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.Kill(); <-proc.Done() })
	return proc
}

func TestRunOwnSessionAndPIDFile(t *testing.T) {
	proc := startPlan(t, fakePlan(t, "sleep"))
	sid, err := unixGetsid(proc.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if sid != proc.Pid {
		t.Errorf("VMM session id %d, want its own session %d", sid, proc.Pid)
	}
	if sid == os.Getpid() || sid == mustGetsid(t, os.Getpid()) {
		t.Errorf("VMM shares the daemon's session")
	}
	rec, err := readPIDFile(proc.PIDFile)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := StartTime(proc.Pid)
	if rec.Pid != proc.Pid || rec.StartTime != st || st == 0 {
		t.Errorf("pid file %+v, process pid %d start %d", rec, proc.Pid, st)
	}
}

func TestStopWithGrace(t *testing.T) {
	t.Run("exits on SIGTERM", func(t *testing.T) {
		proc := startPlan(t, fakePlan(t, "sleep"))
		start := time.Now()
		st, err := Stop(context.Background(), proc, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if st.Signal != "SIGTERM" || time.Since(start) > 3*time.Second {
			t.Errorf("status %v after %v, want killed by SIGTERM at once", st, time.Since(start))
		}
		if _, err := os.Stat(proc.PIDFile); !os.IsNotExist(err) {
			t.Errorf("pid file left behind after exit: %v", err)
		}
	})
	t.Run("ignores SIGTERM, killed after grace", func(t *testing.T) {
		p := fakePlan(t, "ignore-term")
		proc := startPlan(t, p)
		waitForFile(t, p.Stdout, "ready")
		start := time.Now()
		st, err := Stop(context.Background(), proc, 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if st.Signal != "SIGKILL" || time.Since(start) < 300*time.Millisecond {
			t.Errorf("status %v after %v, want SIGKILL after the grace period", st, time.Since(start))
		}
	})
}

func TestExitStatus(t *testing.T) {
	proc := startPlan(t, fakePlan(t, "exit7"))
	st, err := proc.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Known || st.Code != 7 {
		t.Errorf("status %+v, want exit 7", st)
	}
	if err := proc.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signal after exit: %v", err)
	}
}

// TestAdoptAfterRestart starts a VMM stand-in, forgets it (as a daemon
// restart would), re-adopts it from the pid file, and stops it.
func TestAdoptAfterRestart(t *testing.T) {
	p := fakePlan(t, "sleep")
	proc := startPlan(t, p)

	adopted, err := Adopt(p.PIDFile)
	if err != nil {
		t.Fatal(err)
	}
	if !adopted.Adopted() || adopted.Pid != proc.Pid || adopted.StartTime != proc.StartTime {
		t.Fatalf("adopted %+v, started %+v", adopted, proc)
	}
	st, err := Stop(context.Background(), adopted, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.Known {
		t.Errorf("adopted process reports a known status %v; only the parent can know", st)
	}
	if ps, _ := proc.Wait(context.Background()); ps.Signal != "SIGTERM" {
		t.Errorf("original child ended with %v, want SIGTERM", ps)
	}
}

func TestAdoptRejects(t *testing.T) {
	t.Run("start time mismatch", func(t *testing.T) {
		p := fakePlan(t, "sleep")
		proc := startPlan(t, p)
		rec := record(proc)
		rec.StartTime++
		rec.PIDFile = p.PIDFile
		if err := rec.writePIDFile(); err != nil {
			t.Fatal(err)
		}
		_, err := Adopt(p.PIDFile)
		if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "start time") {
			t.Fatalf("Adopt = %v, want not found for a start-time mismatch", err)
		}
		if proc.Signal(0) != nil {
			t.Error("rejecting the pid file touched the process")
		}
	})
	t.Run("other command line", func(t *testing.T) {
		p := fakePlan(t, "sleep")
		proc := startPlan(t, p)
		rec := record(proc)
		rec.Args = []string{"qemu-system-x86_64", "-name", "ferry-other"}
		rec.Marker = "ferry-other"
		rec.PIDFile = p.PIDFile
		if err := rec.writePIDFile(); err != nil {
			t.Fatal(err)
		}
		if _, err := Adopt(p.PIDFile); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("Adopt = %v, want not found for a foreign command line", err)
		}
	})
	t.Run("process gone", func(t *testing.T) {
		p := fakePlan(t, "exit7")
		proc := startPlan(t, p)
		pidfile := filepath.Join(t.TempDir(), "vmm.pid")
		rec := record(proc)
		rec.PIDFile = pidfile
		proc.Wait(context.Background())
		if err := rec.writePIDFile(); err != nil {
			t.Fatal(err)
		}
		cg := filepath.Join(t.TempDir(), "cgroup") // an empty dir stands in for the VMM's cgroup
		os.Mkdir(cg, 0o755)
		rec.Cgroups = []string{cg}
		if err := rec.writePIDFile(); err != nil {
			t.Fatal(err)
		}
		if _, err := Adopt(pidfile); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("Adopt = %v, want not found", err)
		}
		if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
			t.Error("stale pid file kept")
		}
		if _, err := os.Stat(cg); !os.IsNotExist(err) {
			t.Errorf("the cgroup of a VMM that exited without a daemon was kept: %v", err)
		}
	})
}

func TestParseStatStartTime(t *testing.T) {
	// comm with spaces and a parenthesis, as a process may name itself.
	line := "4242 (qemu) (x y) S 1 4242 4242 0 -1 4194560 3 0 0 0 1 2 0 0 20 0 3 0 987654 1000 100 0"
	got, err := parseStatStartTime(line)
	if err != nil || got != 987654 {
		t.Fatalf("start time %d, %v; want 987654", got, err)
	}
	if _, err := parseStatStartTime("4242 (x) S 1 2"); err == nil {
		t.Fatal("short stat accepted")
	}
}

func waitForFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never contained %q", path, want)
}

func unixGetsid(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return strconv.Atoi(f[3]) // field 6: session
}

func mustGetsid(t *testing.T, pid int) int {
	sid, err := unixGetsid(pid)
	if err != nil {
		t.Fatal(err)
	}
	return sid
}

// record copies the pid-file fields of p.
func record(p *Process) *Process {
	return &Process{Pid: p.Pid, StartTime: p.StartTime, Args: p.Args, Marker: p.Marker, PIDFile: p.PIDFile}
}
