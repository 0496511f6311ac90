package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
)

func newComposeLogsCmd(g *globals, f *composeFlags) *cobra.Command {
	var o api.LogsOptions
	var noColor, noPrefix bool
	cmd := &cobra.Command{
		Use:   "logs [-f] [--tail N] [SERVICE...]",
		Short: "Show the output of the project's machines, each line prefixed with its service and replica",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, app, ms, err := f.machines(cmd.Context(), g, args)
			if err != nil {
				return err
			}
			lp := newLogPrinter(g.out, app, ms, !noColor && isTerminal(g.out), !noPrefix)
			return forProject(ms, func(m *types.Machine) error {
				err := lp.stream(cmd.Context(), c, app, m, o)
				if err != nil && cmd.Context().Err() != nil {
					return nil
				}
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&o.Follow, "follow", "f", false, "follow the output")
	fl.IntVarP(&o.Tail, "tail", "n", 0, "only the last N lines of each machine (0: all)")
	fl.StringVar(&o.Since, "since", "", "only output since a time (RFC 3339, Unix seconds or a duration ago)")
	fl.BoolVar(&noColor, "no-color", false, "plain prefixes")
	fl.BoolVar(&noPrefix, "no-log-prefix", false, "no prefixes")
	return cmd
}

// logColours are docker compose's prefix colours (ANSI foregrounds).
var logColours = []int{36, 33, 32, 35, 34, 96, 93, 92, 95, 94}

// logPrinter writes the output of a project's machines as docker compose
// does: each line after "SERVICE-N  | ", the name padded to one more than
// the widest, coloured per machine on a terminal.
type logPrinter struct {
	mu       sync.Mutex
	out      io.Writer
	prefixes map[string]string // by machine ID
}

func newLogPrinter(out io.Writer, project string, ms []*types.Machine, colour, prefix bool) *logPrinter {
	lp := &logPrinter{out: out, prefixes: map[string]string{}}
	if !prefix {
		return lp
	}
	width := 0
	for _, m := range ms {
		width = max(width, len(logName(project, m))+1)
	}
	for i, m := range ms {
		p := fmt.Sprintf("%-*s | ", width, logName(project, m))
		if colour {
			p = fmt.Sprintf("\x1b[%dm%s\x1b[0m", logColours[i%len(logColours)], p)
		}
		lp.prefixes[m.ID] = p
	}
	return lp
}

// logName is the name docker compose prints for a machine: its name
// without the "PROJECT-" in front (web-1), a container_name as it is.
func logName(project string, m *types.Machine) string {
	return strings.TrimPrefix(m.Name, project+"-")
}

// stream copies m's output (with o) until it ends.
func (lp *logPrinter) stream(ctx context.Context, c *api.Client, app string, m *types.Machine, o api.LogsOptions) error {
	w := lp.writer(m)
	err := c.MachineLogs(ctx, app, m.ID, o, w)
	w.flush()
	return err
}

// line writes one line of m's output.
func (lp *logPrinter) line(m *types.Machine, s string) {
	w := lp.writer(m)
	_, _ = io.WriteString(w, s+"\n")
}

// status writes a status line ("web-1 exited with code 0"), unprefixed
// as docker compose writes it.
func (lp *logPrinter) status(s string) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	_, _ = io.WriteString(lp.out, s+"\n")
}

func (lp *logPrinter) writer(m *types.Machine) *prefixWriter {
	return &prefixWriter{mu: &lp.mu, out: lp.out, prefix: lp.prefixes[m.ID]}
}

// prefixWriter writes whole lines to out, each after prefix, holding mu so
// the lines of several machines do not interleave.
type prefixWriter struct {
	mu     *sync.Mutex
	out    io.Writer
	prefix string
	buf    []byte
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(w.buf[:i+1])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *prefixWriter) flush() {
	if len(w.buf) > 0 {
		w.line(append(w.buf, '\n'))
		w.buf = nil
	}
}

func (w *prefixWriter) line(l []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = io.WriteString(w.out, w.prefix)
	_, _ = w.out.Write(l)
}
