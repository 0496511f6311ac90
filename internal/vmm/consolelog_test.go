package vmm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConsoleCappedWhileDaemonDown: a "daemon" process starts a VMM that
// floods its console (8 MiB, no newline) and exits at once. With no daemon
// left, the console writer still keeps every file under the cap, writes the
// VMM's last line, and exits after the VMM.
func TestConsoleCappedWhileDaemonDown(t *testing.T) {
	exe, _ := os.Executable()
	dir := t.TempDir()
	console := filepath.Join(dir, "console.log")
	const capBytes = 512 << 10
	plan := &Plan{
		Driver: "test", Path: exe, Args: []string{exe, "-test.run=^$", "ferry-test"},
		Env:     []string{"FERRY_FAKE_VMM=flood", fmt.Sprintf("FERRY_FLOOD=%d", 8<<20)},
		Stderr:  filepath.Join(dir, "vmm.log"),
		PIDFile: filepath.Join(dir, "vmm.pid"), Marker: "ferry-test",
		Console: &ConsoleLog{Path: console, Max: capBytes, Keep: 2, Stdout: true},
	}
	b, _ := json.Marshal(plan)
	daemon := exec.Command(exe, "-test.run=^$")
	daemon.Env = append(os.Environ(), "FERRY_FAKE_VMM=daemon", "FERRY_PLAN="+string(b))
	if out, err := daemon.CombinedOutput(); err != nil {
		t.Fatalf("daemon: %v %s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(readFileString(console), "flood done") {
		if time.Now().After(deadline) {
			t.Fatalf("the console never got the VMM's last line; vmm log: %s", readFileString(plan.Stderr))
		}
		time.Sleep(20 * time.Millisecond)
	}
	total := int64(0)
	for _, p := range []string{console, console + ".1", console + ".2"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > capBytes {
			t.Errorf("%s holds %d bytes, over the %d cap", p, fi.Size(), capBytes)
		}
		total += fi.Size()
	}
	// Entries never straddle files (internal/logs): each file may end up
	// to one piece of a line (32 KiB here) short of the cap.
	if total < 2*(capBytes-(32<<10)) {
		t.Errorf("only %d bytes kept; the newest %d are wanted", total, 2*capBytes)
	}
	// The writer exits once the VMM has and the pipe is drained.
	for time.Now().Before(deadline) && writerRunning(console) {
		time.Sleep(20 * time.Millisecond)
	}
	if writerRunning(console) {
		t.Error("the console writer is still running after its VMM exited")
	}
}

// TestRunOpensExtraFiles: the descriptors a plan asks for reach the VMM
// with the numbers the plan gave them: files opened by path, a listening
// socket, the console pipe, and an open file.
func TestRunOpensExtraFiles(t *testing.T) {
	p := fakePlan(t, "fds")
	dir := filepath.Dir(p.Stdout)
	ro := filepath.Join(dir, "ro.img")
	os.WriteFile(ro, nil, 0o600)
	open, _ := os.Open(os.DevNull)
	defer open.Close()
	sock := filepath.Join(dir, "control.sock")
	p.Console = &ConsoleLog{Path: filepath.Join(dir, "console.log")}
	p.Extra = []ExtraFile{
		{FD: 3, Name: "ro", Path: ro},
		{FD: 4, Name: "rw", Path: ro, Write: true},
		{FD: 5, Name: "control", Path: sock, Listen: true},
		{FD: 6, Name: "console", Console: true},
		{FD: 7, Name: "tap", File: open},
	}
	startPlan(t, p)
	waitForFile(t, p.Stdout, "ready")
	out := readFileString(p.Stdout)
	for _, want := range []string{"fd 3 " + ro, "fd 4 " + ro, "fd 5 socket:", "fd 6 pipe:", "fd 7 /dev/null"} {
		if !strings.Contains(out, want+"\n") && !strings.Contains(out, want) {
			t.Errorf("the VMM's fds lack %q:\n%s", want, out)
		}
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("control socket: %v", err)
	}
}

func readFileString(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// writerRunning reports a console writer process for path.
func writerRunning(path string) bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.HasPrefix(b, []byte(consoleWriterName+"\x00")) && bytes.Contains(b, []byte(path)) {
			return true
		}
	}
	return false
}
