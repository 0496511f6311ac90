package cli

import (
	"bytes"
	"fmt"
	"io"
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
		Short: "Show the output of the project's machines, each line prefixed with its machine",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, app, ms, err := f.machines(cmd.Context(), g, args)
			if err != nil {
				return err
			}
			width := 0
			for _, m := range ms {
				width = max(width, len(m.Name))
			}
			colour := !noColor && isTerminal(g.out)
			var mu sync.Mutex
			return forProject(ms, func(m *types.Machine) error {
				prefix := ""
				if !noPrefix {
					prefix = fmt.Sprintf("%-*s | ", width, m.Name)
					if colour {
						prefix = fmt.Sprintf("\x1b[%dm%s\x1b[0m", logColours[slicesIndex(ms, m)%len(logColours)], prefix)
					}
				}
				w := &prefixWriter{mu: &mu, out: g.out, prefix: prefix}
				err := c.MachineLogs(cmd.Context(), app, m.ID, o, w)
				w.flush()
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

func slicesIndex(ms []*types.Machine, m *types.Machine) int {
	for i := range ms {
		if ms[i] == m {
			return i
		}
	}
	return 0
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
