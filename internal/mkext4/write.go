package mkext4

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// piece is a metadata region to write: what it is, and where.
type piece struct {
	what  string
	block uint64
	data  []byte // whole blocks
}

// end is the block after the piece.
func (p piece) end() uint64 { return p.block + uint64(len(p.data))/blockSize }

// blocks names the piece's blocks for messages.
func (p piece) blocks() string {
	if p.end()-p.block == 1 {
		return fmt.Sprintf("block %d", p.block)
	}
	return fmt.Sprintf("blocks %d-%d", p.block, p.end()-1)
}

// coalesce sorts pieces and joins the adjacent ones, so that each
// contiguous region is one write.
func coalesce(pieces []piece) []piece {
	slices.SortFunc(pieces, func(a, b piece) int { return cmp.Compare(a.block, b.block) })
	var out []piece
	for _, p := range pieces {
		if l := len(out); l > 0 && out[l-1].end() == p.block {
			o := &out[l-1]
			o.data = append(slices.Clip(o.data), p.data...)
			if !slices.Contains(strings.Split(o.what, ", "), p.what) {
				o.what += ", " + p.what
			}
			continue
		}
		out = append(out, p)
	}
	return out
}

// syncer is a device that can flush its writes, as *os.File can.
type syncer interface{ Sync() error }

// writePieces writes pieces to dev, then the superblock's piece last,
// syncing before and after it when dev can: until the superblock lands,
// the device does not look like a filesystem. Nothing is written at or
// past limit bytes.
func writePieces(dev io.WriterAt, limit int64, pieces []piece, super piece) error {
	for _, p := range coalesce(pieces) {
		if err := writePiece(dev, limit, p); err != nil {
			return err
		}
	}
	if err := flush(dev); err != nil {
		return err
	}
	if err := writePiece(dev, limit, super); err != nil {
		return err
	}
	return flush(dev)
}

// writePiece writes one piece with one WriteAt.
func writePiece(dev io.WriterAt, limit int64, p piece) error {
	off := int64(p.block) * blockSize
	if off+int64(len(p.data)) > limit {
		return fmt.Errorf("write %s (%s): past the device's %d bytes", p.what, p.blocks(), limit)
	}
	n, err := dev.WriteAt(p.data, off)
	if err == nil && n < len(p.data) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("write %s (%s): %w", p.what, p.blocks(), err)
	}
	return nil
}

// flush syncs dev if it can be flushed.
func flush(dev io.WriterAt) error {
	s, ok := dev.(syncer)
	if !ok {
		return nil
	}
	if err := s.Sync(); err != nil {
		return fmt.Errorf("sync device: %w", err)
	}
	return nil
}
