package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/build/buildctx"
	"github.com/ferryvm/ferry/internal/build/cache"
	"github.com/ferryvm/ferry/internal/build/dockerfile"
	"github.com/ferryvm/ferry/internal/build/layer"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/rootfs/apply"
	"os"
	"path/filepath"
)

// flat is an image's files unpacked for COPY --from=<image>.
type flat struct {
	dir string
}

// copySource returns where a COPY or bind mount reads from and the key
// part naming that source's content: the build context (by a checksum of
// what is read), a stage (by its chain key) or an image (by digest).
// open is called only when the files are needed (on a cache miss).
func (bd *build) copySource(ctx context.Context, from string, fromStage *dockerfile.Stage, spec layer.CopySpec) (key string, open func() (layer.Source, func(), error), err error) {
	switch {
	case fromStage != nil:
		st := bd.stages[fromStage]
		if st == nil {
			return "", nil, fmt.Errorf("stage %s is not built before it is read: %w", fromStage, errdefs.ErrInvalidArgument)
		}
		return "stage:" + st.key, func() (layer.Source, func(), error) {
			r, err := bd.flatten(ctx, st)
			if err != nil {
				return nil, nil, err
			}
			return r, func() { r.Close() }, nil
		}, nil
	case from != "":
		img, d, err := bd.resolveImage(ctx, from)
		if err != nil {
			return "", nil, fmt.Errorf("--from=%s: %w", from, err)
		}
		return "image:" + d.String(), func() (layer.Source, func(), error) {
			r, err := bd.flattenImage(ctx, img, d)
			if err != nil {
				return nil, nil, err
			}
			return r, func() { r.Close() }, nil
		}, nil
	default:
		sum, err := layer.Checksum(bd.ctxRoot, spec)
		if err != nil {
			return "", nil, err
		}
		return "context:" + sum, func() (layer.Source, func(), error) { return bd.ctxRoot, func() {}, nil }, nil
	}
}

func (bd *build) flattenImage(ctx context.Context, img v1.Image, d v1.Hash) (*buildctx.Root, error) {
	if bd.images == nil {
		bd.images = map[v1.Hash]*flat{}
	}
	f := bd.images[d]
	if f == nil {
		dir := filepath.Join(bd.work, "image-"+d.Hex[:12])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := apply.ApplyDir(ctx, img, dir, apply.WithSpoolDir(bd.work)); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", d, err)
		}
		f = &flat{dir: dir}
		bd.images[d] = f
	}
	return buildctx.OpenRoot(f.dir)
}

// copy makes (or finds in the cache) the layer of a COPY or ADD.
func (bd *build) copy(ctx context.Context, st *stageState, step dockerfile.Step, ev *StepEvent) (bool, error) {
	c := step.Copy
	spec := layer.CopySpec{Sources: c.Sources, Dest: c.Dest, Exclude: c.Exclude, Parents: c.Parents, Unpack: c.Unpack, Created: bd.created()}
	for _, f := range c.Inline {
		spec.Inline = append(spec.Inline, layer.File{Name: f.Name, Data: f.Data})
	}
	if c.Chmod != "" {
		m, err := strconv.ParseInt(c.Chmod, 8, 32)
		if err != nil {
			return false, fmt.Errorf("--chmod=%s: %w", c.Chmod, errdefs.ErrInvalidArgument)
		}
		spec.Mode = &m
	}
	srcKey, open, err := bd.copySource(ctx, c.From, c.FromStage, spec)
	if err != nil {
		return false, err
	}
	parts := []string{"copy", strconv.FormatBool(c.Add), srcKey, cache.Part("sources", c.Sources...), "dest=" + c.Dest,
		"chown=" + c.Chown, "chmod=" + c.Chmod, cache.Part("exclude", c.Exclude...),
		"parents=" + strconv.FormatBool(c.Parents), "unpack=" + strconv.FormatBool(c.Unpack), bd.epochPart()}
	for _, f := range c.Inline {
		s := sha256.Sum256([]byte(f.Data))
		parts = append(parts, "inline="+f.Name+":"+hex.EncodeToString(s[:]))
	}
	key := cache.Key(st.key, parts...)
	if hit, err := bd.hit(ctx, st, key); hit || err != nil {
		return hit, err
	}
	tree, err := st.fsTree(ctx, bd.b.c.Images)
	if err != nil {
		return false, err
	}
	if c.Chown != "" {
		if spec.Owner, err = resolveOwner(c.Chown, tree); err != nil {
			return false, err
		}
	}
	src, done, err := open()
	if err != nil {
		return false, err
	}
	defer done()
	blob, err := layer.Write(ctx, bd.b.c.Images, cache.Lease(key), bd.norm, func(w *layer.TarWriter) error {
		return layer.Copy(w, src, spec, tree)
	})
	if err != nil {
		return false, err
	}
	return false, bd.add(ctx, st, key, blob, step.Text, "")
}

func (bd *build) epochPart() string {
	if bd.epoch == nil {
		return "epoch="
	}
	return "epoch=" + strconv.FormatInt(bd.epoch.Unix(), 10)
}

// hit appends the cached layer of key, if there is one (and --no-cache
// is not set).
func (bd *build) hit(ctx context.Context, st *stageState, key string) (bool, error) {
	if bd.req.NoCache {
		return false, nil
	}
	rec, ok := bd.b.c.Cache.Get(key)
	if !ok {
		return false, nil
	}
	if err := bd.b.c.Images.AddLease(ctx, bd.lease, rec.Layer.Digest); err != nil {
		return false, err
	}
	st.layers = append(st.layers, rec.Layer)
	st.key = key
	return true, nil
}

// add records a new layer of the stage under key; vmID names it in the
// stage's VM when it was made there.
func (bd *build) add(ctx context.Context, st *stageState, key string, blob layer.Blob, text, vmID string) error {
	if err := bd.b.c.Images.AddLease(ctx, bd.lease, blob.Digest); err != nil {
		return err
	}
	if err := bd.b.c.Cache.Put(key, cache.Record{Layer: blob, Step: text}); err != nil {
		return err
	}
	st.layers = append(st.layers, blob)
	if vmID != "" {
		st.vmIDs[len(st.layers)-1] = vmID
	}
	st.key = key
	return nil
}

// resolveOwner turns --chown=user[:group] into ids with the stage's
// /etc/passwd and /etc/group (a number is used as is; a user alone gets
// its primary group, a uid alone the same number as gid, as BuildKit).
func resolveOwner(spec string, tree *layer.Tree) (*layer.Owner, error) {
	u, g, hasGroup := strings.Cut(spec, ":")
	var o layer.Owner
	uid, err := strconv.Atoi(u)
	switch {
	case err == nil:
		o.UID, o.GID = uid, uid
	default:
		f, ok := lookupColon(tree.Content("etc/passwd"), u)
		if !ok || len(f) < 4 {
			return nil, fmt.Errorf("--chown=%s: no user %q in the image's /etc/passwd: %w", spec, u, errdefs.ErrInvalidArgument)
		}
		o.UID, _ = strconv.Atoi(f[2])
		o.GID, _ = strconv.Atoi(f[3])
	}
	if hasGroup {
		if gid, err := strconv.Atoi(g); err == nil {
			o.GID = gid
		} else {
			f, ok := lookupColon(tree.Content("etc/group"), g)
			if !ok || len(f) < 3 {
				return nil, fmt.Errorf("--chown=%s: no group %q in the image's /etc/group: %w", spec, g, errdefs.ErrInvalidArgument)
			}
			o.GID, _ = strconv.Atoi(f[2])
		}
	}
	return &o, nil
}

func lookupColon(file []byte, name string) ([]string, bool) {
	for _, line := range strings.Split(string(file), "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) > 0 && f[0] == name {
			return f, true
		}
	}
	return nil, false
}
