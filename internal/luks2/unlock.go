package luks2

import (
	"crypto/aes"
	"crypto/pbkdf2"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/xts"
)

// MaxKDFMemoryKiB bounds the memory an argon2 keyslot may ask for.
const MaxKDFMemoryKiB = 64 << 10

// Volume is an unlocked volume: what dm-crypt's table needs.
type Volume struct {
	Key        []byte // the volume (master) key
	Cipher     string // dm-crypt cipher spec, e.g. aes-xts-plain64
	Offset     int64  // data segment start, bytes
	Size       int64  // data segment length in bytes; -1: to the end of the device
	IVTweak    uint64 // added to the sector number of the IV, in 512-byte sectors (dm-crypt's iv_offset)
	SectorSize int
	Keyslot    string // the keyslot that opened
}

// Unlock opens a keyslot of h (on r) with passphrase and returns the
// verified volume key and data segment. A passphrase no keyslot accepts is
// ErrWrongKey.
func (h *Header) Unlock(r io.ReaderAt, passphrase []byte) (*Volume, error) {
	segID, seg, err := h.Meta.DataSegment()
	if err != nil {
		return nil, err
	}
	var errs []error
	tried := 0
	for _, id := range h.Meta.keyslotOrder() {
		ks := h.Meta.Keyslots[id]
		dig, ok := h.digestFor(id, segID)
		if !ok {
			continue
		}
		tried++
		key, err := openKeyslot(r, ks, passphrase)
		if err != nil {
			errs = append(errs, fmt.Errorf("keyslot %s: %w", id, err))
			continue
		}
		match, err := dig.verify(key)
		if err != nil {
			errs = append(errs, fmt.Errorf("digest: %w", err))
			continue
		}
		if !match {
			continue
		}
		v := &Volume{Key: key, Cipher: seg.Encryption, Offset: int64(seg.Offset), Size: -1,
			IVTweak: uint64(seg.IVTweak), SectorSize: seg.SectorSize, Keyslot: id}
		if seg.Size != "dynamic" {
			n, _ := strconv.ParseInt(seg.Size, 10, 64)
			v.Size = n
		}
		return v, nil
	}
	if tried == 0 {
		return nil, fmt.Errorf("no usable keyslot for segment %s: %w", segID, ErrWrongKey)
	}
	if len(errs) > 0 {
		// Keyslots this package cannot read are not a wrong key.
		for _, e := range errs {
			if errors.Is(e, ErrUnsupported) || errors.Is(e, ErrCorrupt) {
				return nil, errors.Join(errs...)
			}
		}
	}
	return nil, ErrWrongKey
}

// digestFor returns the digest that covers keyslot ks and segment seg.
func (h *Header) digestFor(ks, seg string) (Digest, bool) {
	for _, d := range h.Meta.Digests {
		if contains(d.Keyslots, ks) && contains(d.Segments, seg) {
			return d, true
		}
	}
	return Digest{}, false
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// openKeyslot derives the keyslot key, decrypts the keyslot area and merges
// the anti-forensic stripes into a candidate volume key.
func openKeyslot(r io.ReaderAt, ks Keyslot, passphrase []byte) ([]byte, error) {
	switch {
	case ks.Type != "luks2":
		return nil, fmt.Errorf("type %q: %w", ks.Type, ErrUnsupported)
	case ks.AF.Type != "luks1":
		return nil, fmt.Errorf("af %q: %w", ks.AF.Type, ErrUnsupported)
	case ks.Area.Type != "raw":
		return nil, fmt.Errorf("area %q: %w", ks.Area.Type, ErrUnsupported)
	case ks.KeySize <= 0 || ks.KeySize > 256 || ks.AF.Stripes <= 0 || ks.AF.Stripes > 1<<16:
		return nil, fmt.Errorf("key size %d, %d stripes: %w", ks.KeySize, ks.AF.Stripes, ErrCorrupt)
	}
	areaKey, err := deriveKey(ks.KDF, passphrase, ks.Area.KeySize)
	if err != nil {
		return nil, err
	}
	n := ks.KeySize * ks.AF.Stripes
	n = (n + 511) &^ 511 // whole 512-byte sectors
	if uint64(n) > uint64(ks.Area.Size) {
		return nil, fmt.Errorf("%d bytes of stripes exceed the %d-byte area: %w", n, ks.Area.Size, ErrCorrupt)
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, int64(ks.Area.Offset)); err != nil {
		return nil, fmt.Errorf("read keyslot area: %w", err)
	}
	if err := decryptArea(ks.Area.Encryption, areaKey, buf); err != nil {
		return nil, err
	}
	h, err := hashFunc(ks.AF.Hash)
	if err != nil {
		return nil, err
	}
	return afMerge(buf[:ks.KeySize*ks.AF.Stripes], ks.KeySize, ks.AF.Stripes, h), nil
}

func deriveKey(k KDF, passphrase []byte, size int) ([]byte, error) {
	if size <= 0 || size > 256 || len(k.Salt) == 0 {
		return nil, fmt.Errorf("kdf: key size %d, %d-byte salt: %w", size, len(k.Salt), ErrCorrupt)
	}
	switch k.Type {
	case "pbkdf2":
		h, err := hashFunc(k.Hash)
		if err != nil {
			return nil, err
		}
		if k.Iterations <= 0 {
			return nil, fmt.Errorf("pbkdf2: %d iterations: %w", k.Iterations, ErrCorrupt)
		}
		return pbkdf2.Key(h, string(passphrase), k.Salt, k.Iterations, size)
	case "argon2i", "argon2id":
		if k.Time <= 0 || k.Memory <= 0 || k.CPUs <= 0 || k.CPUs > 255 {
			return nil, fmt.Errorf("%s: time %d, memory %d, cpus %d: %w", k.Type, k.Time, k.Memory, k.CPUs, ErrCorrupt)
		}
		if k.Memory > MaxKDFMemoryKiB {
			// cryptsetup's interactive default (1 GiB) would take a small
			// guest's memory.
			return nil, fmt.Errorf("%s needs %d MiB, more than the %d MiB allowed: %w", k.Type, k.Memory>>10, MaxKDFMemoryKiB>>10, ErrUnsupported)
		}
		if k.Type == "argon2i" {
			return argon2.Key(passphrase, k.Salt, uint32(k.Time), uint32(k.Memory), uint8(k.CPUs), uint32(size)), nil
		}
		return argon2.IDKey(passphrase, k.Salt, uint32(k.Time), uint32(k.Memory), uint8(k.CPUs), uint32(size)), nil
	}
	return nil, fmt.Errorf("kdf %q: %w", k.Type, ErrUnsupported)
}

// decryptArea decrypts a keyslot area in place: 512-byte sectors, the IV
// counted from the area's start.
func decryptArea(enc string, key, buf []byte) error {
	if enc != "aes-xts-plain64" {
		return fmt.Errorf("keyslot encryption %q: %w", enc, ErrUnsupported)
	}
	c, err := xts.NewCipher(aes.NewCipher, key)
	if err != nil {
		return fmt.Errorf("keyslot cipher: %w: %w", err, ErrCorrupt)
	}
	for s := 0; s*512 < len(buf); s++ {
		sec := buf[s*512 : (s+1)*512]
		c.Decrypt(sec, sec, uint64(s))
	}
	return nil
}

// afMerge undoes the LUKS anti-forensic split: stripes of keySize bytes,
// each but the last XORed into a running block that is diffused by hash.
func afMerge(src []byte, keySize, stripes int, newHash func() hash.Hash) []byte {
	d := make([]byte, keySize)
	h := newHash()
	sum := make([]byte, 0, h.Size())
	for i := 0; i < stripes-1; i++ {
		subtle.XORBytes(d, d, src[i*keySize:(i+1)*keySize])
		sum = diffuse(d, h, sum)
	}
	out := make([]byte, keySize)
	subtle.XORBytes(out, d, src[(stripes-1)*keySize:])
	return out
}

// diffuse replaces each digest-sized piece j of b with hash(be32(j) ||
// piece), the last piece truncated. It reuses h and sum (4000 stripes:
// no allocation per stripe).
func diffuse(b []byte, h hash.Hash, sum []byte) []byte {
	ds := h.Size()
	var iv [4]byte
	for j := 0; j*ds < len(b); j++ {
		piece := b[j*ds : min((j+1)*ds, len(b))]
		h.Reset()
		binary.BigEndian.PutUint32(iv[:], uint32(j))
		h.Write(iv[:])
		h.Write(piece)
		sum = h.Sum(sum[:0])
		copy(piece, sum)
	}
	return sum
}

// verify reports whether key is the volume key d describes.
func (d Digest) verify(key []byte) (bool, error) {
	if d.Type != "pbkdf2" {
		return false, fmt.Errorf("digest type %q: %w", d.Type, ErrUnsupported)
	}
	h, err := hashFunc(d.Hash)
	if err != nil {
		return false, err
	}
	if d.Iterations <= 0 || len(d.Digest) == 0 {
		return false, fmt.Errorf("digest: %d iterations, %d bytes: %w", d.Iterations, len(d.Digest), ErrCorrupt)
	}
	got, err := pbkdf2.Key(h, string(key), d.Salt, d.Iterations, len(d.Digest))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, d.Digest) == 1, nil
}

// Table returns the dm-crypt table parameters for v on device (a path or
// major:minor), sized for a device of devSize bytes: what goes after
// "<start> <length> crypt" in a device-mapper table, and the length in
// 512-byte sectors.
func (v *Volume) Table(device string, devSize int64) (params string, sectors uint64, err error) {
	size := v.Size
	if size < 0 {
		size = devSize - v.Offset
	}
	if size <= 0 || v.Offset+size > devSize {
		return "", 0, fmt.Errorf("data segment at %d (+%d) does not fit the %d-byte device: %w", v.Offset, size, devSize, ErrCorrupt)
	}
	ss := int64(v.SectorSize)
	size -= size % ss
	if strings.ContainsAny(v.Cipher, " \t\n") || v.Cipher == "" {
		return "", 0, fmt.Errorf("cipher %q: %w", v.Cipher, ErrCorrupt)
	}
	// <cipher> <key> <iv_offset> <device> <offset> [#opts opts]; IVs
	// count 512-byte sectors (LUKS2 does not set iv_large_sectors).
	p := fmt.Sprintf("%s %s %d %s %d", v.Cipher, HexKey(v.Key), v.IVTweak, device, v.Offset/512)
	if ss != 512 {
		p += fmt.Sprintf(" 1 sector_size:%d", ss)
	}
	return p, uint64(size / 512), nil
}
