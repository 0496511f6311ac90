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

// guardBody bounds how slowly r's body may arrive. It keeps the
// connection's read deadline armed from the request's start (so even the
// server's own draining of an unread body is bounded), moves it before
// each read, and clears it at the body's end. A trickling client gets a
// timeout on its connection, not a goroutine held forever; the body is
// then closed unread, so the server closes the connection after replying.
type guardBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	p       pace
	tripped bool // cut for pace
	done    bool // over: read to its end, failed, or closed
	ok      bool // deadlines work on this connection
}

func (g *guardBody) arm() {
	if g.ok {
		g.ok = g.rc.SetReadDeadline(g.p.deadline(time.Now(), 1)) == nil
	}
}

func (g *guardBody) Read(b []byte) (int, error) {
	if g.done {
		return g.ReadCloser.Read(b)
	}
	g.arm()
	n, err := g.ReadCloser.Read(b)
	g.p.n += int64(n)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrDeadlineExceeded):
		g.done, g.tripped = true, true
		_ = g.ReadCloser.Close() // under the expired deadline: no draining
		err = fmt.Errorf("%w: request body arrived slower than %s/s (after %s) or stalled for %s",
			errTooSlow, g.p.lim.BodyMinRate, g.p.lim.BodyGrace, g.p.lim.BodyStall)
	default:
		g.done = true
		if g.ok {
			// The body is over: the server's own reads of the connection
			// must not inherit this deadline.
			_ = g.rc.SetReadDeadline(time.Time{})
		}
	}
	return n, err
}

// finish runs when the handler is done: a body left unread is closed
// under the pace deadline, so the server's draining of it is bounded too.
func (g *guardBody) finish() {
	if g.done {
		return
	}
	g.done = true
	g.arm()
	_ = g.ReadCloser.Close()
}

// guardWriter bounds how slowly a client may read a response: before the
// header, each write and each chunk of a ReadFrom (which keeps sendfile) it
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

// chunk is how much a ReadFrom sends under one deadline: what the slowest
// allowed reader drains in one stall window, so the stall bound does not
// demand more than the minimum rate (within 64 KiB..4 MiB).
func (p *pace) chunk() int64 {
	c := int64(p.lim.BodyMinRate) * int64(p.lim.BodyStall/time.Second)
	return min(max(c, 64<<10), 4<<20)
}

// ReadFrom copies in chunks, each under its own deadline; io.CopyN hands
// the connection an *io.LimitedReader, which sendfile still takes.
func (g *guardWriter) ReadFrom(src io.Reader) (int64, error) {
	var total int64
	chunk := g.p.chunk()
	for {
		g.arm(chunk)
		n, err := io.CopyN(g.ResponseWriter, src, chunk)
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

// guardTransfer puts a request's body and response under the rate
// guards. The handler gets a shallow copy of r with the guarded body; the
// server keeps the original, so it sees when the guard closed the body
// unread and does not reuse the connection.
func (s *Server) guardTransfer(w http.ResponseWriter, r *http.Request) (*guardWriter, *http.Request, *guardBody) {
	rc := http.NewResponseController(w)
	now := time.Now()
	gw := &guardWriter{ResponseWriter: w, rc: rc, p: pace{lim: s.cfg.Limits}, ok: true}
	if r.Body == nil || r.Body == http.NoBody {
		return gw, r, nil
	}
	gb := &guardBody{ReadCloser: r.Body, rc: rc, p: pace{start: now, lim: s.cfg.Limits}, ok: true}
	gb.arm()
	r = r.WithContext(r.Context())
	r.Body = gb
	return gw, r, gb
}
