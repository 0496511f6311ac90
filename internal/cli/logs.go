package cli

import (
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/logs"
)

func newLogsCmd(g *globals) *cobra.Command {
	var app string
	var opt api.LogsOptions
	var stamps bool
	cmd := &cobra.Command{
		Use:   "logs [-f] [-t] [--tail N] [--since T] [--until T] MACHINE",
		Short: "Show a machine's output (stdout here, stderr on stderr)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			err = c.MachineLogLines(cmd.Context(), app, args[0], opt, logLineWriter(g.out, g.err, stamps))
			if cmd.Context().Err() != nil {
				return nil // Ctrl-C ends a follow
			}
			return err
		},
	}
	appFlag(cmd, &app)
	f := cmd.Flags()
	f.BoolVarP(&opt.Follow, "follow", "f", false, "keep streaming while the machine runs")
	f.BoolVarP(&stamps, "timestamps", "t", false, "start each line with the time the machine wrote it (RFC 3339, UTC)")
	f.IntVarP(&opt.Tail, "tail", "n", 0, "only the last N lines (0: all)")
	f.StringVar(&opt.Since, "since", "", "only lines written since a time (RFC 3339, Unix seconds or e.g. 10m ago)")
	f.StringVar(&opt.Until, "until", "", "only lines written before a time (the same forms)")
	return cmd
}

// logLineWriter writes each line to stdout or, written to stderr in the
// machine, to stderr; with stamps after the time it was written, as
// docker logs -t prints it.
func logLineWriter(stdout, stderr io.Writer, stamps bool) func(types.LogLine) error {
	var buf []byte
	return func(l types.LogLine) error {
		w := stdout
		if l.Stream == string(logs.Stderr) {
			w = stderr
		}
		buf = buf[:0]
		if stamps {
			buf = append(l.Time.UTC().AppendFormat(buf, time.RFC3339Nano), ' ')
		}
		buf = append(buf, l.Raw()...)
		_, err := w.Write(buf)
		return err
	}
}
