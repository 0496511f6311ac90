package guest

import (
	"encoding/json"
	"io"
	"os"
	"strings"
)

// The console contract: the machine's serial console carries the
// entrypoint's output, plus lines that are the platform's (init's exit
// marker, kernel messages) which the host leaves out of logs and reads the
// exit status from when it was not connected.

// KernelCmdline is what every ferry guest's kernel gets beyond the VMM
// driver's own options: quiet, and only emergencies on the console, so the
// console carries the entrypoint's output (init writes its must-see lines
// there itself).
const KernelCmdline = "quiet loglevel=1"

// ConsoleExitPrefix starts the line init prints to the kernel log when the
// entrypoint ends, so a host that was not connected can recover the status
// from the console log: `ferry-init: exit {"code":7}`.
const ConsoleExitPrefix = "ferry-init: exit "

// ConsoleExitLine formats the console line for s.
func ConsoleExitLine(s ExitStatus) string {
	b, _ := json.Marshal(s)
	return ConsoleExitPrefix + string(b)
}

// ParseConsoleExit finds the exit line in one console/kernel-log line (which
// may carry a printk timestamp or other prefix) and decodes it.
func ParseConsoleExit(line string) (ExitStatus, bool) {
	i := strings.Index(line, ConsoleExitPrefix)
	if i < 0 {
		return ExitStatus{}, false
	}
	var s ExitStatus
	rest := strings.TrimRight(line[i+len(ConsoleExitPrefix):], "\r\n")
	if err := json.Unmarshal([]byte(rest), &s); err != nil {
		return ExitStatus{}, false
	}
	return s, true
}

// ConsoleTail is how much of the end of a console log ConsoleExit reads:
// init prints its marker as the entrypoint ends, right before powering
// off, so it is among the last lines whatever the log's size.
const ConsoleTail = 64 << 10

// ConsoleExit recovers the entrypoint's exit from init's marker line: the
// last one in the last ConsoleTail bytes of the console log at path, else
// of its rotated copy path.1. It reads only those tails.
func ConsoleExit(path string) (ExitStatus, bool) {
	for _, p := range []string{path, path + ".1"} {
		tail, err := readTail(p, ConsoleTail)
		if err != nil {
			continue
		}
		var last ExitStatus
		found := false
		for _, line := range strings.Split(tail, "\n") {
			if s, ok := ParseConsoleExit(line); ok {
				last, found = s, true
			}
		}
		if found {
			return last, true
		}
	}
	return ExitStatus{}, false
}

func readTail(path string, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	off := max(st.Size()-n, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	return string(b), err
}

// PlatformLine reports whether a console line is the platform's, not the
// entrypoint's: init's exit marker, or a kernel message (printk's
// "[    6.537570] " prefix). Logs leave such lines out.
func PlatformLine(line []byte) bool {
	return strings.Contains(string(line), ConsoleExitPrefix) || isPrintk(line)
}

// isPrintk matches `^\[ *[0-9]+\.[0-9]{6}\] ` without regexp (ferry-init
// links this package).
func isPrintk(b []byte) bool {
	if len(b) == 0 || b[0] != '[' {
		return false
	}
	i := 1
	for i < len(b) && b[i] == ' ' {
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == start || i >= len(b) || b[i] != '.' {
		return false
	}
	i++
	for j := 0; j < 6; j++ {
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		i++
	}
	return len(b) >= i+2 && b[i] == ']' && b[i+1] == ' '
}
