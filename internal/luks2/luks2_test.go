package luks2_test

import (
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/xts"

	"github.com/ferryvm/ferry/internal/luks2"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// format makes a LUKS2 file with cryptsetup (the oracle: this package
// never writes headers) and returns its path.
func format(t *testing.T, key []byte, args ...string) string {
	t.Helper()
	prereq.Tool(t, "cryptsetup")
	dir := t.TempDir()
	img, kf := filepath.Join(dir, "v.img"), filepath.Join(dir, "key")
	if err := os.WriteFile(kf, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	a := append([]string{"luksFormat", "--batch-mode", "--type", "luks2", "--key-file", kf}, args...)
	if out, err := exec.Command("cryptsetup", append(a, img)...).CombinedOutput(); err != nil {
		t.Fatalf("cryptsetup %v: %v\n%s", a, err, out)
	}
	return img
}

// volumeKey asks cryptsetup for the volume key.
func volumeKey(t *testing.T, img string, key []byte) []byte {
	t.Helper()
	kf := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(kf, key, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("cryptsetup", "luksDump", "--dump-volume-key", "--batch-mode", "--key-file", kf, img).CombinedOutput()
	if err != nil {
		t.Fatalf("luksDump --dump-volume-key: %v\n%s", err, out)
	}
	i := strings.Index(string(out), "MK dump:")
	if i < 0 {
		t.Fatalf("no MK dump in\n%s", out)
	}
	hexs := regexp.MustCompile(`[0-9a-f]{2}`).FindAllString(string(out[i+len("MK dump:"):]), -1)
	k, err := hex.DecodeString(strings.Join(hexs, ""))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func open(t *testing.T, img string) *os.File {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestUnlockMatchesCryptsetup: for each KDF and layout cryptsetup writes,
// Unlock recovers the volume key cryptsetup reports, and the segment as
// luksDump shows it.
func TestUnlockMatchesCryptsetup(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef-per-volume-key")
	for _, tc := range []struct {
		name       string
		args       []string
		offset     int64
		sectorSize int
	}{
		{"pbkdf2-4k", []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--sector-size", "4096",
			"--luks2-metadata-size", "16k", "--luks2-keyslots-size", "4064k", "--key-size", "512"}, 4 << 20, 4096},
		{"pbkdf2-sha512-512", []string{"--pbkdf", "pbkdf2", "--hash", "sha512", "--pbkdf-force-iterations", "1000",
			"--sector-size", "512", "--key-size", "256"}, 16 << 20, 512},
		{"argon2id", []string{"--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32", "--pbkdf-parallel", "1"}, 16 << 20, 0},
		{"argon2i", []string{"--pbkdf", "argon2i", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "64", "--pbkdf-parallel", "2"}, 16 << 20, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			img := format(t, key, tc.args...)
			f := open(t, img)
			if !luks2.Probe(f) {
				t.Fatal("Probe: not LUKS")
			}
			h, err := luks2.ReadHeader(f)
			if err != nil {
				t.Fatal(err)
			}
			v, err := h.Unlock(f, key)
			if err != nil {
				t.Fatal(err)
			}
			if want := volumeKey(t, img, key); !bytes.Equal(v.Key, want) {
				t.Fatalf("volume key\n %x\nwant\n %x", v.Key, want)
			}
			if v.Offset != tc.offset || v.Size != -1 || v.Cipher != "aes-xts-plain64" {
				t.Errorf("segment %+v", v)
			}
			if tc.sectorSize != 0 && v.SectorSize != tc.sectorSize {
				t.Errorf("sector size %d, want %d", v.SectorSize, tc.sectorSize)
			}
			if _, err := h.Unlock(f, []byte("wrong")); !errors.Is(err, luks2.ErrWrongKey) {
				t.Errorf("wrong key: %v, want ErrWrongKey", err)
			}
		})
	}
}

// TestTableEncryptsLikeDMCrypt: the table's key and offsets decrypt what
// the XTS definition says dm-crypt writes (a sector encrypted here with
// plain64 IVs in 512-byte units reads back), and the table line is the one
// cryptsetup would load.
func TestTable(t *testing.T) {
	v := &luks2.Volume{Key: bytes.Repeat([]byte{7}, 64), Cipher: "aes-xts-plain64", Offset: 4 << 20, Size: -1, SectorSize: 4096}
	p, n, err := v.Table("/dev/vdc", 4<<20+1<<30+123)
	if err != nil {
		t.Fatal(err)
	}
	if want := "aes-xts-plain64 " + strings.Repeat("07", 64) + " 0 /dev/vdc 8192 1 sector_size:4096"; p != want {
		t.Errorf("params\n %s\nwant\n %s", p, want)
	}
	if n != 1<<30/512 {
		t.Errorf("length %d sectors, want %d (whole 4 KiB sectors)", n, 1<<30/512)
	}
	if _, _, err := v.Table("/dev/vdc", 1<<20); err == nil {
		t.Error("a device smaller than the header gave a table")
	}
	// The IV of a 4 KiB sector is its number in 512-byte units.
	c, err := xts.NewCipher(aes.NewCipher, v.Key)
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("ferry"), 4096/5+1)[:4096]
	ct := make([]byte, 4096)
	c.Encrypt(ct, plain, 8)
	back := make([]byte, 4096)
	c.Decrypt(back, ct, 8)
	if !bytes.Equal(back, plain) {
		t.Fatal("xts round trip")
	}
}

// TestDamagedHeaders: a destroyed primary falls back to the secondary
// copy; both destroyed is ErrCorrupt; a plain or blank file is ErrNotLUKS.
func TestDamagedHeaders(t *testing.T) {
	t.Parallel()
	key := []byte("k")
	img := format(t, key, "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--luks2-metadata-size", "16k", "--luks2-keyslots-size", "4064k")
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := func(off int) string {
		c := append([]byte(nil), b...)
		c[off] ^= 0xff
		p := filepath.Join(t.TempDir(), "c.img")
		if err := os.WriteFile(p, c, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A flipped byte in the primary's JSON: the checksum fails, the
	// secondary (at 16 KiB) opens.
	f := open(t, corrupt(4096+10))
	h, err := luks2.ReadHeader(f)
	if err != nil {
		t.Fatalf("primary damaged: %v", err)
	}
	if _, err := h.Unlock(f, key); err != nil {
		t.Fatalf("unlock via the secondary: %v", err)
	}
	both := append([]byte(nil), b...)
	both[4096+10] ^= 0xff
	both[16<<10+4096+10] ^= 0xff
	p := filepath.Join(t.TempDir(), "both.img")
	if err := os.WriteFile(p, both, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := luks2.ReadHeader(open(t, p)); !errors.Is(err, luks2.ErrCorrupt) {
		t.Errorf("both copies damaged: %v, want ErrCorrupt", err)
	}
	blank := filepath.Join(t.TempDir(), "blank")
	if err := os.WriteFile(blank, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := luks2.ReadHeader(open(t, blank)); !errors.Is(err, luks2.ErrNotLUKS) {
		t.Errorf("blank: %v, want ErrNotLUKS", err)
	}
}
