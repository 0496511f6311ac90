// Package luks2 reads LUKS2 headers and unlocks their keyslots in pure Go:
// ferry-init uses it to open an encrypted volume with dm-crypt inside the
// guest, and the host uses it to check a volume's key before a machine
// boots. It never writes a header (Debian's cryptsetup formats volumes, see
// internal/volume) and does not set up device-mapper itself.
//
// Supported: the LUKS2 binary header (both copies, checksums verified),
// luks2 keyslots with the luks1 anti-forensic splitter, pbkdf2, argon2i and
// argon2id key derivation, aes-xts-plain64 keyslot areas, pbkdf2 digests,
// and one crypt segment. Anything else is ErrUnsupported.
//
// The format: https://gitlab.com/cryptsetup/LUKS2-docs (luks2_doc_wip.pdf).
package luks2

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Errors; each is wrapped with what was being read.
var (
	// ErrNotLUKS: the device has no LUKS2 header (a blank or plain device).
	ErrNotLUKS = errors.New("not a LUKS2 device")
	// ErrCorrupt: a header is there but neither copy is intact.
	ErrCorrupt = errors.New("corrupt LUKS2 header")
	// ErrWrongKey: no keyslot opens with the key given.
	ErrWrongKey = errors.New("no LUKS2 keyslot opens with this key")
	// ErrUnsupported: a valid header that uses something this package
	// does not implement.
	ErrUnsupported = errors.New("unsupported LUKS2 feature")
)

// Binary header layout (LUKS2 on-disk format, section 2).
const (
	binHeaderSize  = 4096
	offVersion     = 6
	offHdrSize     = 8
	offSeqID       = 16
	offLabel       = 24
	offChecksumAlg = 72
	offUUID        = 168
	offHdrOffset   = 256
	offChecksum    = 448
	maxHdrSize     = 4 << 20 // the largest metadata area LUKS2 allows (4 MiB - 4 KiB of JSON)
)

var (
	magicPrimary   = []byte("LUKS\xba\xbe")
	magicSecondary = []byte("SKUL\xba\xbe")
)

// Header is a parsed, checksum-verified LUKS2 header.
type Header struct {
	UUID    string
	Label   string
	SeqID   uint64
	HdrSize int64 // one copy of the metadata (binary header + JSON area)
	Meta    Metadata
}

// Probe reports whether r starts with a LUKS header (of any version),
// without validating it.
func Probe(r io.ReaderAt) bool {
	b := make([]byte, 6)
	if _, err := r.ReadAt(b, 0); err != nil {
		return false
	}
	return bytes.Equal(b, magicPrimary)
}

// ReadHeader reads and verifies the header of r: the primary copy, or the
// secondary where the primary is damaged; of two intact copies the one with
// the higher sequence id wins (cryptsetup's rule).
func ReadHeader(r io.ReaderAt) (*Header, error) {
	first := make([]byte, binHeaderSize)
	if _, err := r.ReadAt(first, 0); err != nil {
		return nil, fmt.Errorf("read LUKS2 header: %w: %w", err, ErrNotLUKS)
	}
	if !bytes.Equal(first[:6], magicPrimary) {
		if bytes.Equal(first[:6], magicSecondary) {
			return nil, fmt.Errorf("the primary header is missing: %w", ErrCorrupt)
		}
		return nil, ErrNotLUKS
	}
	if v := binary.BigEndian.Uint16(first[offVersion:]); v != 2 {
		return nil, fmt.Errorf("LUKS version %d: %w", v, ErrUnsupported)
	}
	primary, perr := readCopy(r, 0, magicPrimary)
	// The secondary copy sits right after the primary; its offset is the
	// primary's size, or (primary destroyed) one of the sizes LUKS2 allows.
	var second *Header
	var serr error
	offsets := []int64{}
	if primary != nil {
		offsets = append(offsets, primary.HdrSize)
	} else {
		for s := int64(16 << 10); s <= maxHdrSize; s *= 2 {
			offsets = append(offsets, s)
		}
	}
	for _, off := range offsets {
		if second, serr = readCopy(r, off, magicSecondary); second != nil {
			break
		}
	}
	switch {
	case primary != nil && second != nil && second.SeqID > primary.SeqID:
		return second, nil
	case primary != nil:
		return primary, nil
	case second != nil:
		return second, nil
	}
	return nil, fmt.Errorf("primary: %v; secondary: %v: %w", perr, serr, ErrCorrupt)
}

// readCopy reads and verifies one header copy at off.
func readCopy(r io.ReaderAt, off int64, magic []byte) (*Header, error) {
	bin := make([]byte, binHeaderSize)
	if _, err := r.ReadAt(bin, off); err != nil {
		return nil, fmt.Errorf("read at %d: %w", off, err)
	}
	if !bytes.Equal(bin[:6], magic) {
		return nil, fmt.Errorf("no header magic at %d", off)
	}
	size := int64(binary.BigEndian.Uint64(bin[offHdrSize:]))
	if size < 16<<10 || size > maxHdrSize || size&(size-1) != 0 {
		return nil, fmt.Errorf("header size %d at %d is not a LUKS2 metadata size", size, off)
	}
	if got := int64(binary.BigEndian.Uint64(bin[offHdrOffset:])); got != off {
		return nil, fmt.Errorf("header at %d says it is at %d", off, got)
	}
	area := make([]byte, size)
	copy(area, bin)
	if _, err := r.ReadAt(area[binHeaderSize:], off+binHeaderSize); err != nil {
		return nil, fmt.Errorf("read JSON area at %d: %w", off+binHeaderSize, err)
	}
	alg := cstring(bin[offChecksumAlg : offChecksumAlg+32])
	h, err := newHash(alg)
	if err != nil {
		return nil, fmt.Errorf("header checksum: %w", err)
	}
	want := append([]byte(nil), bin[offChecksum:offChecksum+h.Size()]...)
	clear(area[offChecksum : offChecksum+64])
	h.Write(area)
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return nil, fmt.Errorf("header at %d: %s checksum mismatch", off, alg)
	}
	js := area[binHeaderSize:]
	if i := bytes.IndexByte(js, 0); i >= 0 {
		js = js[:i]
	}
	meta, err := parseMetadata(js)
	if err != nil {
		return nil, fmt.Errorf("header at %d: %w", off, err)
	}
	return &Header{
		UUID:    cstring(bin[offUUID : offUUID+40]),
		Label:   cstring(bin[offLabel : offLabel+48]),
		SeqID:   binary.BigEndian.Uint64(bin[offSeqID:]),
		HdrSize: size,
		Meta:    *meta,
	}, nil
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// newHash returns the hash LUKS2 names alg.
func newHash(alg string) (hash.Hash, error) {
	f, err := hashFunc(alg)
	if err != nil {
		return nil, err
	}
	return f(), nil
}

func hashFunc(alg string) (func() hash.Hash, error) {
	switch alg {
	case "sha256":
		return sha256.New, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("hash %q: %w", alg, ErrUnsupported)
}

// HexKey is k as dm-crypt's table takes it.
func HexKey(k []byte) string { return hex.EncodeToString(k) }
