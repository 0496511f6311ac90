package initd

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Logger writes init's own messages to the kernel log (/dev/kmsg), prefixed
// "ferry-init:", so they carry printk timestamps and never mix with the
// entrypoint's stdout. Until /dev is mounted, lines are buffered.
type Logger struct {
	mu      sync.Mutex
	w       io.Writer // kmsg; nil until Attach
	console io.Writer // for lines that must be seen even under "quiet"
	pending []string
	start   time.Time
	Debug   bool
}

// NewLogger returns a logger whose times count from start.
func NewLogger(start time.Time) *Logger { return &Logger{start: start} }

// Kernel log levels used.
const (
	levelErr    = 3
	levelNotice = 5
	levelInfo   = 6
)

// Attach starts writing to kmsg (and console for must-see lines), flushing
// buffered lines.
func (l *Logger) Attach(kmsg, console io.Writer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w, l.console = kmsg, console
	for _, p := range l.pending {
		_, _ = io.WriteString(l.w, p)
	}
	l.pending = nil
}

func (l *Logger) write(level int, msg string) {
	line := "<" + strconv.Itoa(level) + ">ferry-init: " + strings.TrimRight(msg, "\n") + "\n"
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		l.pending = append(l.pending, line)
		return
	}
	_, _ = io.WriteString(l.w, line)
}

// Infof logs a step; shown only with Debug.
func (l *Logger) Infof(format string, a ...any) {
	if l.Debug {
		l.write(levelInfo, l.stamp()+fmt.Sprintf(format, a...))
	}
}

// Noticef logs something always worth a line (start, ready, warnings).
func (l *Logger) Noticef(format string, a ...any) {
	l.write(levelNotice, fmt.Sprintf(format, a...))
}

// Must logs a line that has to reach the console whatever the console log
// level (failures, the exit status): to kmsg at error level, and also
// straight to the console when the console log level would hide it.
func (l *Logger) Must(msg string) {
	l.write(levelErr, msg)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.console != nil && consoleLevel() <= levelErr {
		_, _ = io.WriteString(l.console, "ferry-init: "+msg+"\n")
	}
	if l.w == nil { // no kmsg at all: the console is all there is
		_, _ = io.WriteString(os.Stderr, "ferry-init: "+msg+"\n")
	}
}

func (l *Logger) stamp() string {
	return fmt.Sprintf("+%.3fms ", float64(time.Since(l.start).Microseconds())/1000)
}

// consoleLevel reads the console log level; messages below it are printed.
func consoleLevel() int {
	b, err := os.ReadFile("/proc/sys/kernel/printk")
	if err != nil {
		return 7
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 7
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 7
	}
	return n
}
