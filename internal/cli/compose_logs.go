package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/logs"
)

func newComposeLogsCmd(g *globals, f *composeFlags) *cobra.Command {
	var o api.LogsOptions
	var noColor, noPrefix, stamps bool
	cmd := &cobra.Command{
		Use:   "logs [-f] [-t] [--tail N] [--since T] [--until T] [SERVICE...]",
		Short: "Show the output of the project's machines, each line prefixed with its service and replica",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, app, ms, err := f.machines(cmd.Context(), g, args)
			if err != nil {
				return err
			}
			lp := newLogPrinter(g.out, g.err, app, ms, !noColor && isTerminal(g.out), !noPrefix)
			lp.stamps = stamps
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
	fl.BoolVarP(&stamps, "timestamps", "t", false, "show when each line was written (RFC 3339, UTC), after the prefix")
	fl.IntVarP(&o.Tail, "tail", "n", 0, "only the last N lines of each machine (0: all)")
	fl.StringVar(&o.Since, "since", "", "only output since a time (RFC 3339, Unix seconds or a duration ago)")
	fl.StringVar(&o.Until, "until", "", "only output before a time (the same forms)")
	fl.BoolVar(&noColor, "no-color", false, "plain prefixes")
	fl.BoolVar(&noPrefix, "no-log-prefix", false, "no prefixes")
	return cmd
}

// logColours are docker compose's prefix colours (ANSI foregrounds).
var logColours = []int{36, 33, 32, 35, 34, 96, 93, 92, 95, 94}

// logPrinter writes the output of a project's machines as docker compose
// does: each line after "SERVICE-N  | " (the name padded to one more than
// the widest, coloured per machine on a terminal) and, with stamps, the
// time it was written; what a machine wrote to stderr goes to err.
type logPrinter struct {
	mu       sync.Mutex
	out, err io.Writer
	stamps   bool
	prefixes map[string]string // by machine ID
	buf      []byte
}

func newLogPrinter(out, errw io.Writer, project string, ms []*types.Machine, colour, prefix bool) *logPrinter {
	lp := &logPrinter{out: out, err: errw, prefixes: map[string]string{}}
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

// stream prints m's log lines (with o) until they end.
func (lp *logPrinter) stream(ctx context.Context, c *api.Client, app string, m *types.Machine, o api.LogsOptions) error {
	return c.MachineLogLines(ctx, app, m.ID, o, func(l types.LogLine) error {
		lp.print(m, l)
		return nil
	})
}

// print writes one of m's log lines, whole (a line the machine did not
// end gets its newline), so the lines of several machines do not mix.
func (lp *logPrinter) print(m *types.Machine, l types.LogLine) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	w := lp.out
	if l.Stream == string(logs.Stderr) {
		w = lp.err
	}
	b := append(lp.buf[:0], lp.prefixes[m.ID]...)
	if lp.stamps {
		b = append(l.Time.UTC().AppendFormat(b, time.RFC3339Nano), ' ')
	}
	b = append(b, l.Raw()...)
	if len(b) == 0 || b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	_, _ = w.Write(b)
	lp.buf = b
}

// line writes one line of m's output.
func (lp *logPrinter) line(m *types.Machine, s string) {
	lp.print(m, types.LogLine{Data: s, Stream: string(logs.Stdout)})
}

// status writes a status line ("web-1 exited with code 0"), unprefixed
// as docker compose writes it.
func (lp *logPrinter) status(s string) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	_, _ = io.WriteString(lp.out, s+"\n")
}
