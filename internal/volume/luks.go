package volume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/luks2"
)

// Layout is the LUKS2 layout of every ferry volume, as cryptsetup
// luksFormat arguments, pinned so that every ferry writes the same header
// whatever cryptsetup's defaults or benchmarks say:
//
//   - a 16 KiB metadata area (twice: primary and secondary copy) and a
//     4064 KiB keyslot area, so the encrypted data starts at 4 MiB
//     (HeaderSize) and 15 more keyslots fit (cryptsetup luksAddKey);
//   - AES-256 in XTS mode (a 512-bit key) with plain64 IVs, over 4 KiB
//     sectors (dm-crypt's fastest, ext4's block size);
//   - PBKDF2-SHA256 with 1000 iterations for the keyslot and the digest.
//     The passphrase is the volume's own 256-bit random key, never typed:
//     stretching it adds nothing, and argon2's memory and time would be
//     spent in every (emulated) guest at every boot.
var Layout = []string{
	"--type", "luks2",
	"--cipher", "aes-xts-plain64", "--key-size", "512",
	"--sector-size", "4096",
	"--hash", "sha256",
	"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
	"--luks2-metadata-size", "16k", "--luks2-keyslots-size", "4064k",
	"--label", "ferry", "--subsystem", "ferry-volume",
}

// HeaderSize is where an encrypted volume's data starts.
const HeaderSize = 4 << 20

func (s *Store) cryptsetupPath() (string, error) {
	if s.cryptsetup != "" {
		return s.cryptsetup, nil
	}
	if p, err := exec.LookPath("cryptsetup"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/cryptsetup", "/sbin/cryptsetup"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("encrypted volumes need cryptsetup (Debian: apt-get install cryptsetup-bin), or create it with --encrypted=false: %w", errdefs.ErrUnavailable)
}

// formatLUKS writes the LUKS2 header of Layout to file (which exists at its
// full size) with key as the passphrase (on stdin, never in a file or argv).
func (s *Store) formatLUKS(ctx context.Context, file, uuid string, key []byte) error {
	bin, err := s.cryptsetupPath()
	if err != nil {
		return err
	}
	args := append([]string{"luksFormat", "--batch-mode", "--key-file", "-", "--uuid", uuid}, Layout...)
	cmd := exec.CommandContext(ctx, bin, append(args, file)...)
	cmd.Stdin = bytes.NewReader(key)
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "No space left") {
			return fmt.Errorf("cryptsetup luksFormat: %s: %w", msg, errdefs.ErrUnavailable)
		}
		return fmt.Errorf("cryptsetup luksFormat: %v: %s", err, msg)
	}
	return nil
}

// checkKey verifies that key opens the LUKS2 header of the volume file p,
// the way the guest will: a wrong key or a damaged header is refused
// before a machine boots.
func checkKey(p, name string, key []byte) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	defer f.Close()
	h, err := luks2.ReadHeader(f)
	if err != nil {
		return fmt.Errorf("volume %s: %w: %w", name, err, errdefs.ErrInvalidArgument)
	}
	v, err := h.Unlock(f, key)
	if errors.Is(err, luks2.ErrWrongKey) {
		return fmt.Errorf("volume %s: its key file does not open its LUKS2 header (the wrong key): %w", name, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return fmt.Errorf("volume %s: %w: %w", name, err, errdefs.ErrInvalidArgument)
	}
	clear(v.Key)
	return nil
}

func newUUID() string {
	b := newKey()[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
