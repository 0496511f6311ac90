package daemon

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/mirror"
	"github.com/ferryvm/ferry/internal/network"
)

// wireMirror serves the host-local registry mirror (internal/mirror) over
// the image store on Config.MirrorAddr and on each network's gateway at the
// same port, so builders inside machines can push, runs its write-back, and
// (Config.MirrorPrepare) builds each pushed image's rootfs base.
func wireMirror(ctx context.Context, d *daemon) error {
	if d.cfg.MirrorAddr == "" {
		return nil
	}
	var ups []mirror.Upstream
	for _, s := range d.cfg.MirrorUpstreams {
		u, err := mirror.ParseUpstream(s)
		if err != nil {
			return fmt.Errorf("--mirror-upstream: %w", err)
		}
		ups = append(ups, u)
	}
	m, err := mirror.New(d.images, filepath.Join(string(d.root), "mirror-uploads"), d.log.With("svc", "mirror"))
	if err != nil {
		return err
	}
	m.WithUpstreams(ups...)
	ctx, cancel := context.WithCancel(ctx)
	if d.cfg.MirrorPrepare {
		m.WithPrepare(ctx, func(ctx context.Context, h v1.Hash) error {
			img, err := d.images.ImageByDigest(ctx, h)
			if err != nil {
				return err
			}
			_, err = d.rootfs.EnsureBase(ctx, h, img)
			return err
		})
	}
	wb := mirror.NewWriteBack(d.images, mirror.DefaultBackoff, d.log.With("svc", "mirror-writeback"))
	m.WithWriteBack(wb)
	d.writeBack = wb
	l, err := net.Listen("tcp", d.cfg.MirrorAddr)
	if err != nil {
		cancel()
		return fmt.Errorf("listen on --mirror-addr %s: %w", d.cfg.MirrorAddr, err)
	}
	var wg sync.WaitGroup
	serve := func(l net.Listener) {
		wg.Go(func() {
			if err := m.Serve(ctx, l); err != nil {
				d.log.Warn("mirror listener stopped", "addr", l.Addr(), "err", err)
			}
		})
	}
	serve(l)
	wg.Go(func() { wb.Run(ctx) }) // resumes pushes a previous daemon left pending
	d.closers = append(d.closers, func() error { cancel(); wg.Wait(); return nil })
	if d.network == nil {
		return nil
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	var mu sync.Mutex
	gw := map[string][]net.Listener{}
	return d.network.WatchGateways(ctx, func(g network.Gateway, up bool) {
		mu.Lock()
		defer mu.Unlock()
		for _, gl := range gw[g.NetworkID] {
			_ = gl.Close()
		}
		delete(gw, g.NetworkID)
		if !up {
			return
		}
		for _, a := range g.Addrs() {
			gl, err := d.network.Listen("tcp", net.JoinHostPort(a.String(), port))
			if err != nil {
				d.log.Warn("mirror: not served on a gateway", "network", g.Network, "addr", a, "err", err)
				continue
			}
			gw[g.NetworkID] = append(gw[g.NetworkID], gl)
			serve(gl)
		}
	})
}

// mirrorPort is the fixed port of --mirror-addr (0: none or ephemeral),
// which guests may reach on their gateway.
func mirrorPort(addr string) uint16 {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return 0
	}
	return uint16(n)
}
