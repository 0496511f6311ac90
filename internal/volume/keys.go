package volume

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// keySize is the size of a volume's random key: the LUKS2 passphrase
// (cryptsetup --key-file reads it as bytes) that the guest unlocks with.
const keySize = 32

// wrappedMagic starts a wrapped key file: magic, a 12-byte nonce, then
// AES-256-GCM of the key with the volume's id as additional data.
var wrappedMagic = []byte("ferry-wrapped-key-v1\n")

// WrapKeyFromFile reads the daemon's wrap key: the SHA-256 of the file's
// content, so any secret works (32 random bytes are best:
// `head -c 32 /dev/urandom > key`). The file must not be readable by group
// or others.
func WrapKeyFromFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("volume key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("volume key file %s has mode %v: make it 0600 (chmod 600 %s): %w", path, fi.Mode().Perm(), path, errdefs.ErrInvalidArgument)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("volume key file: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("volume key file %s is empty: %w", path, errdefs.ErrInvalidArgument)
	}
	k := sha256.Sum256(b)
	return k[:], nil
}

func newKey() []byte {
	k := make([]byte, keySize)
	if _, err := rand.Read(k); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return k
}

// writeKey stores key for volume (or snapshot) id in dir, wrapped when the
// store has a wrap key; it reports whether it wrapped.
func (s *Store) writeKey(dir, id string, key []byte) (bool, error) {
	data := key
	if s.wrap != nil {
		g, err := s.gcm()
		if err != nil {
			return false, err
		}
		nonce := make([]byte, g.NonceSize())
		_, _ = rand.Read(nonce)
		data = append(append(append([]byte(nil), wrappedMagic...), nonce...), g.Seal(nil, nonce, key, []byte(id))...)
	}
	if err := writeFileSync(filepath.Join(dir, keyFile), data, 0o600); err != nil {
		return false, fmt.Errorf("write key: %w", err)
	}
	return s.wrap != nil, nil
}

// readKey returns the key of volume (or snapshot) id from dir, unwrapping
// it. A missing file, a wrapped key without the daemon's wrap key or with
// another one are each their own clear error.
func (s *Store) readKey(dir, id, name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, keyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("volume %s has no key (%s is missing): its data cannot be decrypted: %w", name, filepath.Join(dir, keyFile), errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("volume %s: read key: %w", name, err)
	}
	if !bytes.HasPrefix(b, wrappedMagic) {
		if len(b) != keySize {
			return nil, fmt.Errorf("volume %s: key file %s holds %d bytes, not a %d-byte key: %w", name, filepath.Join(dir, keyFile), len(b), keySize, errdefs.ErrInvalidArgument)
		}
		return b, nil
	}
	if s.wrap == nil {
		return nil, fmt.Errorf("volume %s: its key is wrapped by a daemon key: start the daemon with --volume-key-file: %w", name, errdefs.ErrUnavailable)
	}
	g, err := s.gcm()
	if err != nil {
		return nil, err
	}
	rest := b[len(wrappedMagic):]
	if len(rest) < g.NonceSize() {
		return nil, fmt.Errorf("volume %s: wrapped key is truncated: %w", name, errdefs.ErrInvalidArgument)
	}
	key, err := g.Open(nil, rest[:g.NonceSize()], rest[g.NonceSize():], []byte(id))
	if err != nil {
		return nil, fmt.Errorf("volume %s: the daemon's --volume-key-file does not unwrap its key (another key file?): %w", name, errdefs.ErrInvalidArgument)
	}
	return key, nil
}

func (s *Store) gcm() (cipher.AEAD, error) {
	c, err := aes.NewCipher(s.wrap)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(c)
}

// writeFileSync writes a new file and syncs it.
func writeFileSync(p string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
