package vmm

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
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

// parseStatStartTime reads field 22 of a /proc/PID/stat line. The command
// name (field 2) is in parentheses and may hold spaces and ')', so fields
// are counted after the last ')'.
func parseStatStartTime(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat %q: no command name", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 {
		return 0, fmt.Errorf("proc stat: %d fields after the command name, want at least 20", len(f))
	}
	return strconv.ParseUint(f[19], 10, 64)
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
