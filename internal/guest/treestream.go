package guest

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// A tree stream carries a file tree between the host and a builder VM's
// helper (layers in, step diffs and cache contents out) without putting a
// tar implementation into ferry-init: the magic "FTS1", then per entry a
// 4-byte big-endian length and a JSON TreeEntry followed by exactly Size
// content bytes, and a zero length at the end. Entries follow OCI layer
// semantics: whiteouts are files named ".wh.<name>", an opaque directory
// is marked by a ".wh..wh..opq" entry inside it. The host converts to and
// from tar.

const treeMagic = "FTS1"

// MaxTreeHeader bounds one entry's JSON header.
const MaxTreeHeader = 1 << 20

// Tree entry types (tar's type flags).
const (
	TreeReg     = '0'
	TreeLink    = '1' // hardlink to Link, an earlier entry
	TreeSymlink = '2'
	TreeChar    = '3'
	TreeBlock   = '4'
	TreeDir     = '5'
	TreeFifo    = '6'
)

// TreeEntry is one file of a tree stream.
type TreeEntry struct {
	Name    string            `json:"name"` // relative, slash-separated, no trailing slash
	Type    byte              `json:"type"`
	Mode    int64             `json:"mode"` // permission and setuid/setgid/sticky bits
	UID     int               `json:"uid,omitempty"`
	GID     int               `json:"gid,omitempty"`
	Size    int64             `json:"size,omitempty"` // TreeReg only
	MtimeNS int64             `json:"mtime_ns,omitempty"`
	Link    string            `json:"link,omitempty"` // symlink target, or hardlink target entry
	Major   int64             `json:"major,omitempty"`
	Minor   int64             `json:"minor,omitempty"`
	Xattrs  map[string]string `json:"xattrs,omitempty"`
}

// TreeWriter writes a tree stream.
type TreeWriter struct {
	w       *bufio.Writer
	left    int64
	started bool
}

// NewTreeWriter starts a tree stream on w.
func NewTreeWriter(w io.Writer) *TreeWriter { return &TreeWriter{w: bufio.NewWriterSize(w, 256<<10)} }

// WriteEntry writes e's header; then write e.Size bytes of content.
func (t *TreeWriter) WriteEntry(e *TreeEntry) error {
	if t.left != 0 {
		return fmt.Errorf("tree stream: %d content bytes missing before %s", t.left, e.Name)
	}
	if !t.started {
		if _, err := t.w.WriteString(treeMagic); err != nil {
			return err
		}
		t.started = true
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	if _, err := t.w.Write(n[:]); err != nil {
		return err
	}
	if _, err := t.w.Write(b); err != nil {
		return err
	}
	if e.Type == TreeReg {
		t.left = e.Size
	}
	return nil
}

// Write writes content of the current entry.
func (t *TreeWriter) Write(b []byte) (int, error) {
	if int64(len(b)) > t.left {
		return 0, errors.New("tree stream: more content than the entry's size")
	}
	n, err := t.w.Write(b)
	t.left -= int64(n)
	return n, err
}

// Close ends the stream (it does not close the underlying writer).
func (t *TreeWriter) Close() error {
	if t.left != 0 {
		return fmt.Errorf("tree stream: %d content bytes missing at the end", t.left)
	}
	if !t.started {
		if _, err := t.w.WriteString(treeMagic); err != nil {
			return err
		}
	}
	if _, err := t.w.Write([]byte{0, 0, 0, 0}); err != nil {
		return err
	}
	return t.w.Flush()
}

// TreeReader reads a tree stream.
type TreeReader struct {
	r       *bufio.Reader
	left    int64
	started bool
	done    bool
}

// NewTreeReader reads a tree stream from r.
func NewTreeReader(r io.Reader) *TreeReader { return &TreeReader{r: bufio.NewReaderSize(r, 256<<10)} }

// Next skips the rest of the current entry and returns the next one, or
// io.EOF after the end marker.
func (t *TreeReader) Next() (*TreeEntry, error) {
	if t.done {
		return nil, io.EOF
	}
	if t.left > 0 {
		if _, err := io.CopyN(io.Discard, t.r, t.left); err != nil {
			return nil, unexpected(err)
		}
		t.left = 0
	}
	if !t.started {
		var m [4]byte
		if _, err := io.ReadFull(t.r, m[:]); err != nil {
			return nil, unexpected(err)
		}
		if string(m[:]) != treeMagic {
			return nil, errors.New("tree stream: bad magic")
		}
		t.started = true
	}
	var n [4]byte
	if _, err := io.ReadFull(t.r, n[:]); err != nil {
		return nil, unexpected(err)
	}
	size := binary.BigEndian.Uint32(n[:])
	if size == 0 {
		t.done = true
		return nil, io.EOF
	}
	if size > MaxTreeHeader {
		return nil, fmt.Errorf("tree stream: %d-byte header", size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(t.r, b); err != nil {
		return nil, unexpected(err)
	}
	var e TreeEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("tree stream: header: %w", err)
	}
	if e.Size < 0 {
		return nil, errors.New("tree stream: negative size")
	}
	if e.Type == TreeReg {
		t.left = e.Size
	}
	return &e, nil
}

// Read reads the current entry's content.
func (t *TreeReader) Read(b []byte) (int, error) {
	if t.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > t.left {
		b = b[:t.left]
	}
	n, err := t.r.Read(b)
	t.left -= int64(n)
	if err == io.EOF && t.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("tree stream: %w", io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("tree stream: %w", err)
}
