package daemon

import (
	"context"
	"log/slog"

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
	d.volumeAPI = &volumeService{Store: st, log: d.log.With("svc", "volume")}
	api.RegisterVolumes(d.api, d.volumeAPI)
	return nil
}

// volumeService is the volume store served by the API, whose Extend also
// grows the volume inside the machine running with it (grow:
// machine.Manager.GrowVolume, set by wireMachines).
type volumeService struct {
	*volume.Store
	log  *slog.Logger
	grow func(ctx context.Context, v volume.Volume) (bool, error)
}

func (s *volumeService) Extend(ctx context.Context, app, ref string, size int64) (volume.Volume, bool, error) {
	v, needsRestart, err := s.Store.Extend(ctx, app, ref, size)
	if err != nil || !needsRestart || s.grow == nil {
		return v, needsRestart, err
	}
	grown, err := s.grow(ctx, v)
	if err != nil {
		s.log.Warn("grow volume online failed; its machine sees the size at its next start", "volume", v.Name, "err", err)
	}
	return v, !grown, nil
}
