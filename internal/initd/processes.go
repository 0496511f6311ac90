package initd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ferryvm/ferry/internal/guest"
)

// ProcessesMain is ferry-init re-executed as the process lister
// (guest.ProcessesHelperArg): the guest's processes from /proc as JSON on
// stdout. It returns the exit code.
func ProcessesMain() int {
	ps, err := processes("/proc")
	if err == nil {
		err = json.NewEncoder(os.Stdout).Encode(ps)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// processes reads every process under procDir, kernel threads left out.
func processes(procDir string) ([]guest.ProcessInfo, error) {
	dirs, err := filepath.Glob(filepath.Join(procDir, "[0-9]*"))
	if err != nil {
		return nil, err
	}
	out := []guest.ProcessInfo{}
	for _, d := range dirs {
		p, ok := readProcess(d)
		if ok {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// readProcess parses /proc/PID/stat, status and cmdline; false for a
// process gone meanwhile or a kernel thread (no command line, a child of
// kthreadd).
func readProcess(dir string) (guest.ProcessInfo, bool) {
	var p guest.ProcessInfo
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return p, false
	}
	// pid (comm) state ppid ... : comm may hold spaces and parentheses.
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return p, false
	}
	p.PID, _ = strconv.Atoi(strings.TrimSpace(string(stat[:open])))
	comm := string(stat[open+1 : end])
	f := strings.Fields(string(stat[end+1:]))
	if len(f) < 22 {
		return p, false
	}
	p.State = f[0]
	p.PPID, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	p.CPUTicks = ut + st
	p.StartTicks, _ = strconv.ParseUint(f[19], 10, 64)
	p.RSSPages, _ = strconv.ParseInt(f[21], 10, 64)
	cmd, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
	if len(cmd) == 0 {
		if p.PPID == 2 || p.PID == 2 {
			return p, false
		}
		p.Cmd = "[" + comm + "]"
	} else {
		p.Cmd = strings.TrimSpace(strings.ReplaceAll(string(bytes.TrimRight(cmd, "\x00")), "\x00", " "))
	}
	if status, err := os.Open(filepath.Join(dir, "status")); err == nil {
		b, _ := io.ReadAll(io.LimitReader(status, 64<<10))
		status.Close()
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Uid:"); ok {
				if fs := strings.Fields(v); len(fs) > 0 {
					p.UID, _ = strconv.Atoi(fs[0])
				}
			}
		}
	}
	return p, true
}
