package vmm

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/logs"
)

// ConsoleLog is a guest console kept under a size cap at all times, also
// while no daemon runs: the VMM writes the console into a pipe (QEMU's
// chardev on the pipe's descriptor, Firecracker's stdout), and a console
// writer — this executable re-run as "ferry-console-writer", in a session
// of its own like the VMM — appends what it reads to Path and rotates it
// by rename before it would pass Max (Path → Path.1 → … → Path.Keep).
// It keeps the console as internal/logs' store: each line stamped as it
// arrives, with its stream when ferry-init tagged it. It exits when the
// VMM has exited and the pipe is drained.
type ConsoleLog struct {
	Path   string `json:"path"`
	Max    int64  `json:"max"`              // bytes in Path; 0: DefaultConsoleMax
	Keep   int    `json:"keep"`             // rotated copies; 0: 1
	Stdout bool   `json:"stdout,omitempty"` // the console is the VMM's stdout (Firecracker)
}

// DefaultConsoleMax caps a console log file.
const DefaultConsoleMax = 1 << 20

const consoleWriterName = "ferry-console-writer"

// reexecPath is this executable when Reexec found it can run as a console
// writer.
var reexecPath string

// Reexec runs the console writer and exits when this process was started
// as one; otherwise it notes that this executable can be one. Call it
// first thing in main, and in TestMain of tests that start VMMs. Without
// it Run hands the VMM the log file itself (appended, not capped, kept in
// bounds only by a Rotator while a daemon runs).
func Reexec() {
	if filepath.Base(os.Args[0]) == consoleWriterName {
		os.Exit(consoleWriterMain(os.Args[1:]))
	}
	if exe, err := os.Executable(); err == nil {
		reexecPath = exe
	}
}

// startConsole returns the descriptor the VMM writes the console to: a
// pipe to a newly started console writer, or with no writer available the
// file itself.
func startConsole(c *ConsoleLog, stderr *os.File) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o750); err != nil {
		return nil, err
	}
	if reexecPath == "" {
		return openLog(c.Path)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// A larger pipe lets the guest write bursts without waiting for the
	// writer (the kernel caps it at fs.pipe-max-size, 1 MiB by default).
	_, _ = unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	max, keep := c.limits()
	cmd := &exec.Cmd{
		Path:        reexecPath,
		Args:        []string{consoleWriterName, "-max", strconv.FormatInt(max, 10), "-keep", strconv.Itoa(keep), c.Path},
		Env:         []string{},
		Stdin:       r,
		Stderr:      stderr,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("console writer: %w", err)
	}
	go func() { _ = cmd.Wait() }() // reaped here while this daemon lives
	return w, nil
}

func (c *ConsoleLog) limits() (int64, int) {
	max, keep := c.Max, c.Keep
	if max <= 0 {
		max = DefaultConsoleMax
	}
	if keep < 1 {
		keep = 1
	}
	return max, keep
}

func consoleWriterMain(args []string) int {
	fs := flag.NewFlagSet(consoleWriterName, flag.ContinueOnError)
	max := fs.Int64("max", DefaultConsoleMax, "bytes per file")
	keep := fs.Int("keep", 1, "rotated copies")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || *max < 1 || *keep < 1 {
		fmt.Fprintln(os.Stderr, "usage: ferry-console-writer [-max BYTES] [-keep N] PATH < pipe")
		return 2
	}
	if err := logs.Copy(os.Stdin, fs.Arg(0), *max, *keep); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", consoleWriterName, err)
		return 1
	}
	return 0
}
