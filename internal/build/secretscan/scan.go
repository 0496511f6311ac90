// Package secretscan finds the footgun of layered images: a file that
// looks like a secret, added in one layer and deleted or overwritten in a
// later one, is hidden from the container but still shipped in the image,
// readable by anyone who pulls it.
//
// Scan reads every layer once, in order. A file is suspect by name (SSH
// keys, .env files, cloud and registry credential files) or by content
// (private-key blocks, AWS/GitHub/Slack token shapes, "secret = <high-
// entropy value>" assignments; only the first 64 KiB of files up to 1 MiB
// are read for that). A suspect is reported when a later layer hides it,
// with the layer that holds it (index, digest, the instruction that made
// it) and the one that hides it.
package secretscan

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Finding is one hidden secret.
type Finding struct {
	Path string `json:"path"` // absolute path in the image
	// Reason says why the file looks like a secret.
	Reason string `json:"reason"`
	// Layer is the index (0 = base) of the layer holding the file, with
	// its digest and the history line that made it.
	Layer       int     `json:"layer"`
	LayerDigest v1.Hash `json:"layer_digest"`
	CreatedBy   string  `json:"created_by,omitempty"`
	// HiddenBy is the index of the layer that deletes or overwrites it.
	HiddenBy int    `json:"hidden_by"`
	How      string `json:"how"` // "deleted" or "overwritten"
}

func (f Finding) String() string {
	by := ""
	if f.CreatedBy != "" {
		by = " (" + f.CreatedBy + ")"
	}
	return fmt.Sprintf("%s: %s in layer %d %s%s, %s in layer %d, is still in the image", f.Path, f.Reason, f.Layer, short(f.LayerDigest), by, f.How, f.HiddenBy)
}

func short(d v1.Hash) string {
	if len(d.Hex) > 12 {
		return d.Algorithm + ":" + d.Hex[:12]
	}
	return d.String()
}

// suspect is a file that looks like a secret.
type suspect struct {
	layer  int
	reason string
}

// Scan reports the secrets img ships in layers that a later layer hides.
func Scan(ctx context.Context, img v1.Image) ([]Finding, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("secret scan: %w", err)
	}
	var history []string
	if cfg, err := img.ConfigFile(); err == nil {
		for _, h := range cfg.History {
			if !h.EmptyLayer {
				history = append(history, h.CreatedBy)
			}
		}
	}
	digests := make([]v1.Hash, len(layers))
	live := map[string]suspect{} // path → suspect currently visible
	var out []Finding
	hide := func(p string, by int, how string) {
		if s, ok := live[p]; ok {
			out = append(out, Finding{Path: "/" + p, Reason: s.reason, Layer: s.layer, HiddenBy: by, How: how})
			delete(live, p)
		}
	}
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if digests[i], err = l.Digest(); err != nil {
			return nil, err
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("secret scan: layer %d: %w", i, err)
		}
		err = scanLayer(rc, i, live, hide)
		_ = rc.Close()
		if err != nil {
			return nil, fmt.Errorf("secret scan: layer %d (%s): %w", i, digests[i], err)
		}
	}
	for i := range out {
		out[i].LayerDigest = digests[out[i].Layer]
		if out[i].Layer < len(history) && len(history) == len(layers) {
			out[i].CreatedBy = history[out[i].Layer]
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Layer != out[j].Layer {
			return out[i].Layer < out[j].Layer
		}
		return out[i].Path < out[j].Path
	})
	return out, nil
}

func scanLayer(r io.Reader, idx int, live map[string]suspect, hide func(string, int, string)) error {
	tr := tar.NewReader(r)
	buf := make([]byte, sniffBytes)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		dir, base := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		switch {
		case base == ".wh..wh..opq":
			for k := range live {
				if dir == "" || strings.HasPrefix(k, dir+"/") {
					hide(k, idx, "deleted")
				}
			}
			continue
		case strings.HasPrefix(base, ".wh."):
			gone := path.Join(dir, strings.TrimPrefix(base, ".wh."))
			hide(gone, idx, "deleted")
			for k := range live {
				if strings.HasPrefix(k, gone+"/") {
					hide(k, idx, "deleted")
				}
			}
			continue
		}
		if _, ok := live[p]; ok {
			hide(p, idx, "overwritten")
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA { //nolint:staticcheck // old writers still emit it
			continue
		}
		reason := byName(p)
		if reason == "" && h.Size > 0 && h.Size <= maxSniffFile && wantsContent(p) {
			n, _ := io.ReadFull(tr, buf)
			reason = byContent(buf[:n])
		}
		if reason != "" {
			live[p] = suspect{layer: idx, reason: reason}
		}
	}
}
