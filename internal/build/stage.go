package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/ferryvm/ferry/internal/build/buildctx"
	"github.com/ferryvm/ferry/internal/build/dockerfile"
	"github.com/ferryvm/ferry/internal/build/layer"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/guest/treetar"
	"github.com/ferryvm/ferry/internal/rootfs/apply"
)

// stageState is a stage as it is built: its root image (the image at the
// bottom of its FROM chain, or none for scratch), the layers built on top
// of it, its config and history, and the chain key of its last layer.
type stageState struct {
	s            *dockerfile.Stage
	root         v1.Image // nil: scratch
	rootDigest   v1.Hash
	rootManifest *v1.Manifest
	layers       []layer.Blob
	cfg          *v1.ConfigFile
	history      []v1.History
	key          string
	args         []instructions.KeyValuePairOptional

	tree  *layer.Tree // lazily: the filesystem, for COPY destinations and --chown
	treeN int         // built layers applied to tree

	sess    Session
	vmIDs   map[int]string // built layer index → its id in the VM
	nextVM  int
	caches  []*cacheMount
	flatDir string // the stage's files, flattened for COPY --from / bind mounts
}

// child starts a stage FROM this one: same root, layers, config, history.
func (st *stageState) child(s *dockerfile.Stage) *stageState {
	c := &stageState{s: s, root: st.root, rootDigest: st.rootDigest, rootManifest: st.rootManifest,
		layers: append([]layer.Blob(nil), st.layers...), cfg: st.cfg.DeepCopy(),
		history: append([]v1.History(nil), st.history...), key: st.key}
	c.cfg.Config.OnBuild = nil
	return c
}

// blobLayer is a layer blob of the image store as a go-containerregistry
// layer (its diff ID known, so nothing is hashed to use it).
type blobLayer struct {
	ims  Images
	blob layer.Blob
	mt   types.MediaType
}

func (l *blobLayer) Digest() (v1.Hash, error)            { return l.blob.Digest, nil }
func (l *blobLayer) DiffID() (v1.Hash, error)            { return l.blob.DiffID, nil }
func (l *blobLayer) Size() (int64, error)                { return l.blob.Size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error)  { return l.ims.OpenBlob(l.blob.Digest) }

// image is the stage as a v1.Image (root + built layers), for flattening
// and the secret scan.
func (st *stageState) image(ims Images, cfg *v1.ConfigFile) (v1.Image, error) {
	base := st.root
	if base == nil {
		base = empty.Image
	}
	var ls []v1.Layer
	for _, b := range st.layers {
		l, err := partial.CompressedToLayer(&blobLayer{ims: ims, blob: b, mt: layer.MediaType})
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	img, err := mutate.AppendLayers(base, ls...)
	if err != nil {
		return nil, err
	}
	return mutate.ConfigFile(img, cfg)
}

// uncompressed opens a built layer's tar.
func (st *stageState) uncompressed(ims Images, i int) (io.ReadCloser, error) {
	rc, err := ims.OpenBlob(st.layers[i].Digest)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(rc)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, rc}, nil
}

// fsTree returns the stage's filesystem index, reading only the layers it
// has not seen yet.
func (st *stageState) fsTree(ctx context.Context, ims Images) (*layer.Tree, error) {
	if st.tree == nil {
		st.tree = layer.NewTree()
		if st.root != nil {
			ls, err := st.root.Layers()
			if err != nil {
				return nil, err
			}
			for i, l := range ls {
				rc, err := l.Uncompressed()
				if err != nil {
					return nil, fmt.Errorf("base layer %d: %w", i, err)
				}
				err = st.tree.Apply(rc)
				rc.Close()
				if err != nil {
					return nil, fmt.Errorf("base layer %d: %w", i, err)
				}
			}
		}
	}
	for ; st.treeN < len(st.layers); st.treeN++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rc, err := st.uncompressed(ims, st.treeN)
		if err != nil {
			return nil, err
		}
		err = st.tree.Apply(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
	}
	return st.tree, nil
}

// flatten returns the stage's files as a directory (made once per build),
// breakout-safe.
func (bd *build) flatten(ctx context.Context, st *stageState) (*buildctx.Root, error) {
	if st.flatDir == "" {
		img, err := st.image(bd.b.c.Images, bd.configFile(st))
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(bd.work, "stage-"+st.s.String()+"-"+newID())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		bd.emit(Event{Message: "unpacking " + st.s.String() + " for COPY --from / RUN --mount=from"})
		if err := apply.ApplyDir(ctx, img, dir, apply.WithSpoolDir(bd.work)); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", st.s, err)
		}
		st.flatDir = dir
	}
	return buildctx.OpenRoot(st.flatDir)
}

// session returns the stage's builder VM, booting it on first use.
func (bd *build) session(ctx context.Context, st *stageState) (Session, error) {
	if st.sess != nil {
		return st.sess, nil
	}
	if bd.b.c.Runner == nil {
		return nil, errors.New("this daemon has no builder VMs (no VMM): RUN cannot run")
	}
	base := st.rootDigest
	if st.root == nil {
		d, err := bd.scratchImage(ctx)
		if err != nil {
			return nil, err
		}
		base = d
	}
	bd.emit(Event{Message: fmt.Sprintf("booting a builder VM for %s", st.s)})
	sess, err := bd.b.c.Runner.Start(ctx, SessionSpec{Build: bd.id, Stage: st.s.String(), Base: base, Network: bd.req.Network != "none"})
	if err != nil {
		return nil, fmt.Errorf("start builder VM: %w", err)
	}
	bd.boots++
	st.sess, st.vmIDs = sess, map[int]string{}
	return sess, nil
}

// vmID allocates a layer or directory id in the stage's VM.
func (st *stageState) vmID(prefix string) string {
	st.nextVM++
	return fmt.Sprintf("%s%d", prefix, st.nextVM)
}

// lowers loads every built layer the VM does not have yet and returns the
// VM ids, topmost first.
func (bd *build) lowers(ctx context.Context, st *stageState) ([]string, error) {
	out := make([]string, len(st.layers))
	for i := range st.layers {
		id, ok := st.vmIDs[i]
		if !ok {
			id = st.vmID("l")
			rc, err := st.uncompressed(bd.b.c.Images, i)
			if err != nil {
				return nil, err
			}
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(treetar.FromTar(rc, pw)) }()
			err = st.sess.Load(ctx, guest.LoadLayer, id, pr)
			pr.Close()
			rc.Close()
			if err != nil {
				return nil, fmt.Errorf("load layer %s into the builder VM: %w", st.layers[i].DiffID, err)
			}
			st.vmIDs[i] = id
		}
		out[len(st.layers)-1-i] = id
	}
	return out, nil
}

// close ends the stage's VM, saving its cache mounts first.
func (st *stageState) close(ctx context.Context, bd *build) error {
	var errs []error
	if st.sess != nil {
		for _, c := range st.caches {
			errs = append(errs, c.save(ctx, st.sess))
		}
		errs = append(errs, st.sess.Close(ctx))
		st.sess = nil
	}
	for _, c := range st.caches {
		c.unlock()
	}
	st.caches = nil
	return errors.Join(errs...)
}
