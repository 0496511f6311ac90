package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/ferryvm/ferry/internal/image"
)

// progressView shows the per-blob progress of a pull or push: mpb bars on a
// terminal, one plain line per state change otherwise (as docker pull does
// when its output is not a terminal).
type progressView interface {
	update(p image.Progress)
	// finish completes the display; ok=false aborts the unfinished bars.
	finish(ok bool)
}

// newProgressView picks the view for w; push selects push wording.
func newProgressView(w io.Writer, push, quiet bool) progressView {
	switch {
	case quiet:
		return nopView{}
	case isTerminal(w):
		return &barView{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(40)), push: push, bars: map[string]*blobBar{}}
	}
	return &lineView{w: w, push: push, last: map[string]image.State{}}
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) //nolint:gosec // fds fit in int
}

// shortID is the 12-hex-digit form docker shows for layers and images.
func shortID(d fmt.Stringer) string {
	s := d.String()
	if _, hex, ok := strings.Cut(s, ":"); ok {
		s = hex
	}
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}

// statusText is docker's wording for a blob state.
func statusText(st image.State, push bool) string {
	switch st {
	case image.StateWaiting:
		return "Waiting"
	case image.StateDownloading:
		return "Downloading"
	case image.StatePushing:
		return "Pushing"
	case image.StateVerifying:
		return "Verifying Checksum"
	case image.StateExists:
		if push {
			return "Layer already exists"
		}
		return "Already exists"
	case image.StateDone:
		if push {
			return "Pushed"
		}
		return "Pull complete"
	}
	return string(st)
}

// shown reports whether a blob is displayed: layers (docker shows no
// config or manifest lines).
func shown(p image.Progress) bool { return p.Kind == "" || p.Kind == "layer" }

type nopView struct{}

func (nopView) update(image.Progress) {}
func (nopView) finish(bool)           {}

// lineView prints "<layer>: <status>" whenever a blob changes state.
type lineView struct {
	w    io.Writer
	push bool
	last map[string]image.State
}

func (v *lineView) update(p image.Progress) {
	if !shown(p) {
		return
	}
	id := shortID(p.Digest)
	if v.last[id] == p.State {
		return
	}
	v.last[id] = p.State
	fmt.Fprintf(v.w, "%s: %s\n", id, statusText(p.State, v.push))
}

func (v *lineView) finish(bool) {}

// barView shows one mpb bar per layer.
type barView struct {
	p    *mpb.Progress
	push bool
	mu   sync.Mutex
	bars map[string]*blobBar
}

type blobBar struct {
	bar   *mpb.Bar
	total int64
	state atomic.Value // string
}

func (v *barView) update(p image.Progress) {
	if !shown(p) {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	id := shortID(p.Digest)
	b := v.bars[id]
	if b == nil {
		b = &blobBar{total: p.Total}
		b.state.Store(statusText(p.State, v.push))
		b.bar = v.p.AddBar(p.Total,
			mpb.PrependDecorators(
				decor.Name(id+": ", decor.WC{W: 14, C: decor.DindentRight}),
				decor.Any(func(decor.Statistics) string { s, _ := b.state.Load().(string); return s }, decor.WC{W: 21, C: decor.DindentRight}),
			),
			mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f")),
		)
		v.bars[id] = b
	}
	b.state.Store(statusText(p.State, v.push))
	switch p.State {
	case image.StateDone, image.StateExists:
		b.bar.SetTotal(p.Total, true)
	default:
		// Hold the bar just short of complete until the blob is committed,
		// so the final state still renders.
		cur := p.Done
		if p.Total > 0 && cur >= p.Total {
			cur = p.Total - 1
		}
		b.bar.SetCurrent(cur)
	}
}

func (v *barView) finish(ok bool) {
	v.mu.Lock()
	for _, b := range v.bars {
		if !b.bar.Completed() {
			if ok {
				b.bar.SetTotal(b.total, true)
			} else {
				b.bar.Abort(false)
			}
		}
	}
	v.mu.Unlock()
	v.p.Wait()
}
