package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// errTooSlow is a transfer cut for arriving (or being read) slower than
// the limits allow.
var errTooSlow = errors.New("transfer too slow")

// pace is the deadline policy of one transfer direction: a transfer that
// started at start and has moved n bytes must move its next byte before
// min(now+stall, start+grace+(n+1)/rate). So it may stall for a while, and
// may start slowly, but its average rate cannot stay under rate, and no
// client holds a connection forever by trickling.
type pace struct {
	start time.Time
	n     int64
	lim   Limits
}

func (p *pace) deadline(now time.Time, next int64) time.Time {
	d := now.Add(p.lim.BodyStall)
	if rate := int64(p.lim.BodyMinRate); rate > 0 {
		byRate := p.start.Add(p.lim.BodyGrace + time.Duration(float64(p.n+next)/float64(rate)*float64(time.Second)))
		if byRate.Before(d) {
			d = byRate
		}
	}
	return d
}

// guardBody bounds how slowly r's body may arrive. It sets the
// connection's read deadline before each read and clears it at the end, so
// a trickling client gets a timeout on its connection, not a goroutine
// held forever. Trip reports whether it cut the body.
type guardBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	p       pace
	tripped bool
	done    bool
}

func (g *guardBody) Read(b []byte) (int, error) {
	if g.done {
		return g.ReadCloser.Read(b)
	}
	if err := g.rc.SetReadDeadline(g.p.deadline(time.Now(), 1)); err != nil {
		g.done = true // the connection cannot take deadlines: read unguarded
		return g.ReadCloser.Read(b)
	}
	n, err := g.ReadCloser.Read(b)
	g.p.n += int64(n)
	if err != nil {
		g.done = true
		// The body is over (or broken): the server's own reads of the
		// connection must not inherit this deadline.
		_ = g.rc.SetReadDeadline(time.Time{})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			g.tripped = true
			err = fmt.Errorf("%w: request body arrived slower than %s/s (after %s) or stalled for %s",
				errTooSlow, g.p.lim.BodyMinRate, g.p.lim.BodyGrace, g.p.lim.BodyStall)
		}
	}
	return n, err
}

// guardWriter bounds how slowly a client may read a response: before the
// header, each write and each 4 MiB of a ReadFrom (which keeps sendfile) it
// sets the connection's write deadline by the same pace as bodies, counted
// from the response's start. The server clears it once the response is out.
type guardWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	p  pace
	ok bool // deadlines work on this connection
}

func (g *guardWriter) arm(next int64) {
	if g.p.start.IsZero() {
		g.p.start = time.Now()
	}
	if g.ok {
		g.ok = g.rc.SetWriteDeadline(g.p.deadline(time.Now(), next)) == nil
	}
}

func (g *guardWriter) WriteHeader(status int) {
	g.arm(0)
	g.ResponseWriter.WriteHeader(status)
}

func (g *guardWriter) Write(b []byte) (int, error) {
	g.arm(int64(len(b)))
	n, err := g.ResponseWriter.Write(b)
	g.p.n += int64(n)
	return n, err
}

const guardChunk = 4 << 20

// ReadFrom copies in chunks, each under its own deadline; io.CopyN hands
// the connection an *io.LimitedReader, which sendfile still takes.
func (g *guardWriter) ReadFrom(src io.Reader) (int64, error) {
	var total int64
	for {
		g.arm(guardChunk)
		n, err := io.CopyN(g.ResponseWriter, src, guardChunk)
		total += n
		g.p.n += n
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (g *guardWriter) Flush() {
	if f, ok := g.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (g *guardWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// guardTransfer puts a request's body and response under the rate guards.
func (s *Server) guardTransfer(w http.ResponseWriter, r *http.Request) (*guardWriter, *guardBody) {
	rc := http.NewResponseController(w)
	now := time.Now()
	gw := &guardWriter{ResponseWriter: w, rc: rc, p: pace{lim: s.cfg.Limits}, ok: true}
	if r.Body == nil || r.Body == http.NoBody {
		return gw, nil
	}
	gb := &guardBody{ReadCloser: r.Body, rc: rc, p: pace{start: now, lim: s.cfg.Limits}}
	r.Body = gb
	return gw, gb
}
