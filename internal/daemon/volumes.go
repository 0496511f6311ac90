package daemon

import (
	"context"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/volume"
)

// wireVolumes opens the volume store (recovering what a killed daemon
// left half done) and serves the Volumes API.
func wireVolumes(ctx context.Context, d *daemon) error {
	opts := []volume.Option{volume.WithLogger(d.log.With("svc", "volume"))}
	if d.cfg.VolumeKeyFile != "" {
		k, err := volume.WrapKeyFromFile(d.cfg.VolumeKeyFile)
		if err != nil {
			return err
		}
		opts = append(opts, volume.WithWrapKey(k))
	}
	st, err := volume.Open(ctx, d.root.Volumes(), d.db, opts...)
	if err != nil {
		return err
	}
	d.volumes = st
	api.RegisterVolumes(d.api, st)
	return nil
}
