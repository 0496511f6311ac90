package template

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/errdefs"
)

const (
	stateName    = "state"
	manifestName = "manifest.json"
	tmpPrefix    = ".tmp-"
)

// Manifest describes one template on disk.
type Manifest struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	Key     Key    `json:"key"`
	Size    int64  `json:"size"`   // of the state file
	SHA256  string `json:"sha256"` // of the state file
	// Memory is the guest RAM file, when the VMM saved RAM apart from
	// the state.
	Memory  *MemoryManifest `json:"memory,omitempty"`
	Created time.Time       `json:"created"`
}

// MemoryManifest describes a template's guest RAM file: sparse, Size
// bytes long, Data bytes of it in non-zero pages, SHA256 over those pages
// and their offsets.
type MemoryManifest struct {
	Size   int64  `json:"size"`
	Data   int64  `json:"data"`
	SHA256 string `json:"sha256"`
}

// Template is a checked template: its saved state is at State; with a
// Manifest.Memory, RAM is its guest RAM, loaded into a sealed memfd that
// a VMM maps privately and nothing can write. RAM is the caller's own
// descriptor of it: Close it once the VMM has its own (the store closes
// its descriptor of a memfd no Get asked for in MemoryIdle).
type Template struct {
	Manifest
	Dir   string
	State string
	RAM   *os.File
}

// Close closes t's descriptor of its RAM, if any.
func (t *Template) Close() error {
	if t == nil || t.RAM == nil {
		return nil
	}
	return t.RAM.Close()
}

// Store keeps templates in one directory, one subdirectory per key ID.
type Store struct {
	dir string

	mu sync.Mutex
	// verified remembers state files whose checksum this process has
	// checked, by identity, so a restore does not re-read the whole state
	// every time; any rewrite of the file changes its identity.
	verified map[string]fileID
	// memories are the sealed memfds of templates' memory files, by
	// template directory, with the identity of the file they were loaded
	// from: loaded (and checked) once per process.
	memories map[string]loadedMemory
	now      func() time.Time // time.Now; tests move it
}

type loadedMemory struct {
	id   fileID
	f    *os.File
	used time.Time // the last Get (or Put) that handed it out
}

// MemoryIdle is how long the store keeps a loaded memfd no Get asked
// for: a daemon that stops restoring a template gives its RAM back (VMMs
// restored from it keep their own descriptors and mappings); the next
// restore loads and checks the file again.
const MemoryIdle = 10 * time.Minute

type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
	ctime    int64
}

func identity(fi fs.FileInfo) fileID {
	st, _ := fi.Sys().(*syscall.Stat_t)
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st != nil {
		id.dev, id.ino, id.ctime = uint64(st.Dev), st.Ino, st.Ctim.Nano()
	}
	return id
}

// Open opens (creating it, mode 0700) the store in dir and removes what
// interrupted writes left there and the templates unused for Unused.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("template store: %w", err)
	}
	s := &Store{dir: dir, verified: map[string]fileID{}, memories: map[string]loadedMemory{}, now: time.Now}
	if err := s.clean(); err != nil {
		return nil, err
	}
	if err := s.prune(); err != nil {
		return nil, err
	}
	return s, nil
}

// Unused is how long a template may go without a Get before the store
// removes it (when it opens, and after each Put): the templates of an
// older kernel, ferry-init or QEMU are never asked for again, and each
// keeps tens of megabytes of disk. A Get marks its template used (the
// directory's modification time, at most once an hour).
const Unused = 14 * 24 * time.Hour

// prune removes the templates whose last use is older than Unused.
func (s *Store) prune() error {
	now := s.now()
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("template store: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) <= Unused {
			continue
		}
		if err := s.remove(e.Name()); err != nil {
			return fmt.Errorf("template store: remove unused template %s: %w", e.Name(), err)
		}
	}
	return nil
}

// markUsed records that dir's template was just asked for.
func (s *Store) markUsed(dir string) {
	now := s.now()
	if fi, err := os.Stat(dir); err == nil && now.Sub(fi.ModTime()) > time.Hour {
		_ = os.Chtimes(dir, now, now)
	}
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) clean() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("template store: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
				return fmt.Errorf("template store: remove interrupted write: %w", err)
			}
		}
	}
	return nil
}

// Put saves a template for k: save writes the state into f (an empty file
// in the store, opened read-write; a VMM can be handed its descriptor);
// mem, when not nil, is the guest RAM the VMM left out of the state (a
// NewMemory memfd, its VMM ended: nothing may write it any more), saved
// as the template's sparse memory file.
// The state is synced and checksummed and the template appears at once, in
// whole, replacing an older one of the same key; when save or any step
// fails (a full disk) nothing of it remains.
func (s *Store) Put(ctx context.Context, k Key, save func(ctx context.Context, f *os.File) error, mem *os.File) (_ *Template, err error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	id := k.ID()
	tmp, err := os.MkdirTemp(s.dir, tmpPrefix+id+"-")
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	f, err := os.OpenFile(filepath.Join(tmp, stateName), os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", id, err)
	}
	defer f.Close()
	if err := save(ctx, f); err != nil {
		return nil, fmt.Errorf("template %s: save: %w", id, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("template %s: sync state: %w", id, err)
	}
	size, sum, err := checksum(f)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", id, err)
	}
	if size == 0 {
		return nil, fmt.Errorf("template %s: the VMM saved an empty state: %w", id, errdefs.ErrInvalidArgument)
	}
	m := Manifest{Version: FormatVersion, ID: id, Key: k, Size: size, SHA256: sum, Created: time.Now().UTC()}
	if mem != nil {
		if m.Memory, err = writeMemory(filepath.Join(tmp, memoryName), mem); err != nil {
			return nil, fmt.Errorf("template %s: %w", id, err)
		}
	}
	if err := writeSynced(filepath.Join(tmp, manifestName), m); err != nil {
		return nil, fmt.Errorf("template %s: %w", id, err)
	}
	if err := syncDir(tmp); err != nil {
		return nil, fmt.Errorf("template %s: %w", id, err)
	}
	final := filepath.Join(s.dir, id)
	if _, err := os.Lstat(final); err == nil {
		// Move the old one aside first: rename cannot replace a directory
		// that is not empty, and the old one must not be half removed.
		old, err := os.MkdirTemp(s.dir, tmpPrefix+"old-")
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", id, err)
		}
		if err := os.Rename(final, filepath.Join(old, id)); err != nil {
			return nil, fmt.Errorf("template %s: replace: %w", id, err)
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("template %s: %w", id, err)
	}
	if err := syncDir(s.dir); err != nil {
		return nil, fmt.Errorf("template %s: %w", id, err)
	}
	t := &Template{Manifest: m, Dir: final, State: filepath.Join(final, stateName)}
	if fi, err := os.Stat(t.State); err == nil {
		s.remember(t.State, fi)
	}
	s.forget(final)
	if m.Memory != nil {
		if t.RAM, err = s.memory(final, m); err != nil {
			return nil, fmt.Errorf("template %s: %w", id, err)
		}
	}
	_ = s.prune() // the new template is used, not pruned; a failure here is retried at the next Put or Open
	return t, nil
}

// writeMemory saves the memfd mem into a new sparse file at path, synced.
func writeMemory(path string, mem *os.File) (*MemoryManifest, error) {
	fi, err := mem.Stat()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sum, data, err := copyMemory(f, mem, fi.Size())
	if err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("sync memory: %w", err)
	}
	return &MemoryManifest{Size: fi.Size(), Data: data, SHA256: sum}, nil
}

// memory returns a new descriptor of the sealed memfd of the memory file
// in dir (the caller's to close), loading and checking the file when the
// store holds no memfd of it, or the file changed since; it closes the
// memfds idle for MemoryIdle.
func (s *Store) memory(dir string, m Manifest) (*os.File, error) {
	path := filepath.Join(dir, memoryName)
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errors.New("memory file missing")
		}
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for d, l := range s.memories {
		if d != dir && now.Sub(l.used) > MemoryIdle {
			_ = l.f.Close()
			delete(s.memories, d)
		}
	}
	if l, ok := s.memories[dir]; ok {
		if l.id == identity(fi) {
			l.used = now
			s.memories[dir] = l
			return dupFile(l.f)
		}
		_ = l.f.Close()
		delete(s.memories, dir)
	}
	f, sum, err := sealedMemory(path, m.ID[:min(16, len(m.ID))], m.Memory.Size)
	if err != nil {
		return nil, err
	}
	if sum != m.Memory.SHA256 {
		f.Close()
		return nil, errors.New("memory checksum mismatch (corrupt)")
	}
	s.memories[dir] = loadedMemory{id: identity(fi), f: f, used: now}
	return dupFile(f)
}

// dupFile is a new descriptor (close-on-exec) of f's open file.
func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup %s: %w", f.Name(), err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// forget closes the store's memfd of dir's template, if loaded: VMMs that
// map it keep their own descriptor and mapping.
func (s *Store) forget(dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.memories[dir]; ok {
		_ = l.f.Close()
		delete(s.memories, dir)
	}
}

// Get returns k's template after checking it. A template that is missing
// is errdefs.ErrNotFound; one that is corrupt, truncated, of another format
// version or another key is removed and reported as ErrNotFound too, with
// the reason, so the caller rebuilds it or boots cold.
func (s *Store) Get(k Key) (*Template, error) {
	id := k.ID()
	dir := filepath.Join(s.dir, id)
	t, err := s.check(k, dir)
	if err == nil {
		s.markUsed(dir)
		return t, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("template %s: %w", id, errdefs.ErrNotFound)
	}
	if rerr := s.Remove(k); rerr != nil {
		return nil, fmt.Errorf("template %s: %w; removing it: %w", id, err, rerr)
	}
	return nil, fmt.Errorf("template %s is unusable (removed): %w: %w", id, err, errdefs.ErrNotFound)
}

func (s *Store) check(k Key, dir string) (*Template, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	switch {
	case m.Version != FormatVersion:
		return nil, fmt.Errorf("format version %d, this ferry reads %d", m.Version, FormatVersion)
	case m.ID != k.ID() || m.Key.ID() != m.ID:
		return nil, errors.New("manifest is of another key")
	}
	state := filepath.Join(dir, stateName)
	f, err := os.Open(state)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errors.New("state file missing")
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() != m.Size {
		return nil, fmt.Errorf("state is %d bytes, the manifest says %d (truncated)", fi.Size(), m.Size)
	}
	if !s.known(state, fi) {
		_, sum, err := checksum(f)
		if err != nil {
			return nil, err
		}
		if sum != m.SHA256 {
			return nil, errors.New("state checksum mismatch (corrupt)")
		}
		s.remember(state, fi)
	}
	t := &Template{Manifest: m, Dir: dir, State: state}
	if m.Memory != nil {
		if t.RAM, err = s.memory(dir, m); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Remove deletes k's template, if any.
func (s *Store) Remove(k Key) error { return s.remove(k.ID()) }

// remove deletes the template of key ID id, if any.
func (s *Store) remove(id string) error {
	dir := filepath.Join(s.dir, id)
	s.mu.Lock()
	delete(s.verified, filepath.Join(dir, stateName))
	s.mu.Unlock()
	s.forget(dir)
	// Rename first, so no reader sees it half removed.
	old, err := os.MkdirTemp(s.dir, tmpPrefix+"rm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(old)
	if err := os.Rename(dir, filepath.Join(old, "t")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (s *Store) known(path string, fi fs.FileInfo) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.verified[path]
	return ok && id == identity(fi)
}

func (s *Store) remember(path string, fi fs.FileInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.verified[path] = identity(fi)
}

// checksum reads f from its start.
func checksum(f *os.File) (int64, string, error) {
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return 0, "", fmt.Errorf("checksum: %w", err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func writeSynced(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
