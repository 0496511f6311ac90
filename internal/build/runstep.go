package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"

	"github.com/ferryvm/ferry/internal/build/buildctx"
	"github.com/ferryvm/ferry/internal/build/cache"
	"github.com/ferryvm/ferry/internal/build/dockerfile"
	"github.com/ferryvm/ferry/internal/build/layer"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/guest/treetar"
)

// runStep finds a RUN's layer in the cache or runs it in the stage's VM.
func (bd *build) runStep(ctx context.Context, st *stageState, step dockerfile.Step, ev *StepEvent) (bool, error) {
	r := step.Run
	network := r.Network != "none" && bd.req.Network != "none"
	parts := []string{"run", cache.Part("argv", r.Argv...), cache.Part("env", r.Env...), "user=" + r.User,
		"workdir=" + r.Workdir, "network=" + strconv.FormatBool(network), bd.epochPart()}
	for _, f := range r.Files {
		s := sha256.Sum256([]byte(f.Data))
		parts = append(parts, "file="+f.Name+":"+hex.EncodeToString(s[:]))
	}
	var mounts []guest.BuildMount
	// prepare fills a mount's source in the VM once it runs.
	var prepare []func(Session) error
	for _, m := range r.Mounts {
		gm := guest.BuildMount{Type: m.Type, Target: m.Target, ReadOnly: m.ReadOnly, Size: m.SizeLimit}
		if m.Mode != nil {
			gm.Mode = uint32(*m.Mode)
		}
		if m.UID != nil {
			gm.UID = int(*m.UID)
		}
		if m.GID != nil {
			gm.GID = int(*m.GID)
		}
		switch m.Type {
		case "secret":
			data, ok := bd.req.Secrets[m.SecretID]
			if !ok {
				if m.Required {
					return false, fmt.Errorf("secret %q is required but was not given (--secret id=%s,src=FILE): %w", m.SecretID, m.SecretID, errdefs.ErrInvalidArgument)
				}
				continue
			}
			gm.Data, gm.Env = data, m.Env
			parts = append(parts, fmt.Sprintf("secret=%s:%s:%s:%o:%d:%d", m.SecretID, m.Target, m.Env, gm.Mode, gm.UID, gm.GID))
		case "tmpfs":
			parts = append(parts, fmt.Sprintf("tmpfs=%s:%d", m.Target, m.SizeLimit))
		case "cache":
			parts = append(parts, fmt.Sprintf("cache=%s:%s:%v:%o:%d:%d", m.CacheID, m.Target, m.ReadOnly, gm.Mode, gm.UID, gm.GID))
			m, i := m, len(mounts)
			prepare = append(prepare, func(s Session) error {
				id, err := bd.cacheDir(ctx, st, s, m.CacheID)
				mounts[i].Source = id
				return err
			})
		case "bind":
			src := buildctx.Clean(m.Source)
			srcKey, open, err := bd.copySource(ctx, m.From, m.FromStage, layer.CopySpec{Sources: []string{"/" + src}, Dest: "/"})
			if err != nil {
				return false, fmt.Errorf("--mount=type=bind,source=%s: %w", m.Source, err)
			}
			parts = append(parts, fmt.Sprintf("bind=%s:%s:%s:%v", srcKey, src, m.Target, m.ReadOnly))
			i := len(mounts)
			prepare = append(prepare, func(s Session) error {
				id := st.vmID("d")
				fs, done, err := open()
				if err != nil {
					return err
				}
				defer done()
				pr, pw := io.Pipe()
				go func() { pw.CloseWithError(sourceToTree(fs, src, pw)) }()
				err = s.Load(ctx, guest.LoadDir, id, pr)
				pr.Close()
				if err != nil {
					return fmt.Errorf("load the bind mount %s: %w", m.Target, err)
				}
				mounts[i].Source = id
				if fi, err := fs.Stat(src); err == nil && !fi.IsDir() {
					mounts[i].SubPath = baseName(src)
				}
				return nil
			})
		default:
			return false, fmt.Errorf("RUN --mount=type=%s is not supported: %w", m.Type, errdefs.ErrInvalidArgument)
		}
		mounts = append(mounts, gm)
	}
	key := cache.Key(st.key, parts...)
	if hit, err := bd.hit(ctx, st, key); hit || err != nil {
		return hit, err
	}
	sess, err := bd.session(ctx, st)
	if err != nil {
		return false, err
	}
	lowers, err := bd.lowers(ctx, st)
	if err != nil {
		return false, err
	}
	for _, p := range prepare {
		if err := p(sess); err != nil {
			return false, err
		}
	}
	gs := guest.BuildStep{Upper: st.vmID("l"), Lowers: lowers, Argv: r.Argv, Env: r.Env, User: r.User,
		Workdir: r.Workdir, Network: network, Hostname: "ferry-build", Mounts: mounts}
	for _, f := range r.Files {
		gs.Files = append(gs.Files, guest.BuildFile{Name: f.Name, Data: f.Data})
	}
	out := &logWriter{bd: bd, id: ev.ID, stream: "stdout"}
	errw := &logWriter{bd: bd, id: ev.ID, stream: "stderr"}
	code, err := sess.Run(ctx, gs, out, errw)
	if err != nil {
		return false, err
	}
	if code != 0 {
		return false, fmt.Errorf("did not complete successfully: exit code %d: %w", code, ErrStepFailed)
	}
	blob, err := layer.Write(ctx, bd.b.c.Images, cache.Lease(key), bd.norm, func(w *layer.TarWriter) error {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(sess.Diff(ctx, gs.Upper, pw)) }()
		err := treetar.ToTar(pr, w)
		pr.CloseWithError(err)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("the step's changes: %w", err)
	}
	return false, bd.add(ctx, st, key, blob, step.Text, gs.Upper)
}

// logWriter turns a RUN's output into log events.
type logWriter struct {
	bd     *build
	id     int
	stream string
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.bd.emit(Event{Log: &LogEvent{ID: w.id, Stream: w.stream, Data: string(b)}})
	return len(b), nil
}
