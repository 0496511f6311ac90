package vmm

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// procRoot is /proc; tests never change it, but keeping it in one place
// documents every file this package reads.
const procRoot = "/proc"

// StartTime returns field 22 of /proc/PID/stat: the process's start time in
// clock ticks since boot. With the pid it identifies a process across pid
// reuse.
func StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", procRoot, pid))
	if err != nil {
		return 0, err
	}
	return parseStatStartTime(string(b))
}

// CPUTicks returns the user plus system time of pid in clock ticks (fields
// 14 and 15 of /proc/PID/stat). A process that is gone is ErrNotFound.
func CPUTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", procRoot, pid))
	if err != nil {
		return 0, fmt.Errorf("vmm process %d: %w", pid, errdefs.ErrNotFound)
	}
	u, err := statField(string(b), 14)
	if err != nil {
		return 0, err
	}
	k, err := statField(string(b), 15)
	if err != nil {
		return 0, err
	}
	return u + k, nil
}

// RSSBytes returns the resident set of pid (/proc/PID/statm, field 2).
func RSSBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/statm", procRoot, pid))
	if err != nil {
		return 0, fmt.Errorf("vmm process %d: %w", pid, errdefs.ErrNotFound)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("%s/%d/statm: short", procRoot, pid)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s/%d/statm: %w", procRoot, pid, err)
	}
	return pages * int64(os.Getpagesize()), nil
}

func parseStatStartTime(stat string) (uint64, error) { return statField(stat, 22) }

// statField reads field n (1-based, as proc(5) numbers them; n >= 3) of a
// /proc/PID/stat line: the one parser of that file. The command name
// (field 2) is in parentheses and may hold spaces and ')', so fields are
// counted after the last ')'.
func statField(stat string, n int) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat %q: no command name", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state).
	if len(f) < n-2 {
		return 0, fmt.Errorf("proc stat: %d fields after the command name, want at least %d", len(f), n-2)
	}
	return strconv.ParseUint(f[n-3], 10, 64)
}

// Cmdline returns /proc/PID/cmdline split into arguments.
func Cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/cmdline", procRoot, pid))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil, nil
	}
	return strings.Split(string(b), "\x00"), nil
}
