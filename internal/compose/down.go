package compose

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/network"
)

// DownOptions are compose down's flags.
type DownOptions struct {
	Volumes       bool // -v: the project's named volumes too
	RemoveOrphans bool // machines of services no longer in the file
}

// Down removes the project's machines (in parallel, with their anonymous
// volumes), then its networks and, with Volumes, its named volumes.
// Without RemoveOrphans, machines of services no longer in p stay, and so
// do the networks they are on. p may
// be nil when no compose file is at hand: then every machine labelled with
// project goes, and no named volume.
func Down(ctx context.Context, c Client, project string, p *Plan, o DownOptions) error {
	ms, err := Machines(ctx, c, project)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ms))
	kept := false
	for i, m := range ms {
		if p != nil && !o.RemoveOrphans {
			if _, ok := p.Services[m.Config.Metadata[LabelService]]; !ok && m.Config.Metadata[LabelOneOff] != "True" {
				slog.Warn("orphan machine left running (--remove-orphans removes it)", "machine", m.Name)
				kept = true
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var stop types.StopRequest
			if p != nil && p.Services[m.Config.Metadata[LabelService]] != nil {
				stop = p.Services[m.Config.Metadata[LabelService]].Stop
			}
			errs[i] = remove(ctx, c, project, m, stop)
			if errs[i] == nil {
				slog.Info("removed", "machine", m.Name)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if kept {
		// The orphans are still on the project's networks and may use
		// its staged files: both stay until they go.
		return nil
	}
	if err := os.RemoveAll(filepath.Join(StageDir(), project)); err != nil {
		return fmt.Errorf("remove the staged secrets of project %s: %w", project, err)
	}
	nets, err := c.ListNetworks(ctx, network.ListOptions{Labels: map[string]string{LabelProject: project}})
	if err != nil {
		return fmt.Errorf("list networks of project %s: %w", project, err)
	}
	for _, n := range nets {
		if err := c.RemoveNetwork(ctx, n.ID); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("remove network %s: %w", n.Name, err)
		}
		slog.Info("removed", "network", n.Name)
	}
	if o.Volumes && p != nil {
		for _, v := range p.Volumes {
			if err := c.RemoveVolume(ctx, project, v); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				return fmt.Errorf("remove volume %s: %w", v, err)
			}
			slog.Info("removed", "volume", v)
		}
	}
	return nil
}
