package cli

import (
	"testing"

	"github.com/spf13/pflag"

	"github.com/ferryvm/ferry/internal/rootfs/apply"
)

func TestLayerLimitFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want func(apply.Limits) apply.Limits
		bad  bool
	}{
		{args: nil, want: func(l apply.Limits) apply.Limits { return l }},
		{args: []string{"--layer-max-stream", "8GiB", "--layer-max-metadata", "512MiB", "--layer-max-depth", "64", "--layer-min-free", "0"},
			want: func(l apply.Limits) apply.Limits {
				l.MaxStream, l.MaxMetadata, l.MaxDepth, l.MinFree = 8<<30, 512<<20, 64, -1
				return l
			}},
		{args: []string{"--layer-min-free", "2GiB", "--layer-max-sparse", "1TiB"}, want: func(l apply.Limits) apply.Limits {
			l.MinFree, l.MaxSparse = 2<<30, 1<<40
			return l
		}},
		{args: []string{"--layer-max-stream", "0"}, bad: true},
		{args: []string{"--layer-max-stream", "lots"}, bad: true},
	} {
		f := pflag.NewFlagSet("daemon", pflag.ContinueOnError)
		var l apply.Limits
		layerLimitFlags(f, &l)
		err := f.Parse(c.args)
		if c.bad {
			if err == nil {
				t.Errorf("%v: accepted", c.args)
			}
			continue
		}
		if want := c.want(apply.DefaultLimits()); err != nil || l != want {
			t.Errorf("%v: %+v, %v; want %+v", c.args, l, err, want)
		}
	}
}
