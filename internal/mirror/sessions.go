package mirror

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ferryvm/ferry/internal/image/content"
)

// session is one chunked upload: a file under the upload directory, the
// running hash of what it holds, and beside it (ID.json) the repository
// it belongs to, so a restarted daemon resumes it: as distribution does,
// a client that PATCHes or asks where its upload stands after a restart
// carries on from the bytes on disk (re-hashed once when first touched).
type session struct {
	mu   sync.Mutex
	repo string
	f    *os.File
	h    hash.Hash
	n    int64
}

type sessionMeta struct {
	Repo    string    `json:"repo"`
	Started time.Time `json:"started"`
}

var sessionID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (s *Server) sessionPath(id string) string { return filepath.Join(s.uploads, id) }

// newSession opens a fresh chunked upload into repo.
func (s *Server) newSession(repo string) (string, *session, error) {
	var rnd [16]byte
	_, _ = rand.Read(rnd[:])
	id := hex.EncodeToString(rnd[:])
	meta, _ := json.Marshal(sessionMeta{Repo: repo, Started: time.Now().UTC()})
	if err := os.WriteFile(s.sessionPath(id)+".json", meta, 0o600); err != nil {
		return "", nil, fmt.Errorf("upload session: %w", content.DiskError(err))
	}
	f, err := os.OpenFile(s.sessionPath(id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		_ = os.Remove(s.sessionPath(id) + ".json")
		return "", nil, fmt.Errorf("upload session: %w", content.DiskError(err))
	}
	ss := &session{repo: repo, f: f, h: sha256.New()}
	s.mu.Lock()
	s.sessions[id] = ss
	s.mu.Unlock()
	return id, ss, nil
}

// lookupSession finds upload id of repo: open in this process, or left
// on disk by a previous daemon (nil: unknown).
func (s *Server) lookupSession(id, repo string) (*session, error) {
	if !sessionID.MatchString(id) {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.sessions[id]; ss != nil {
		if ss.repo != repo {
			return nil, nil
		}
		return ss, nil
	}
	raw, err := os.ReadFile(s.sessionPath(id) + ".json")
	if err != nil {
		return nil, nil
	}
	var m sessionMeta
	if json.Unmarshal(raw, &m) != nil || m.Repo != repo {
		return nil, nil
	}
	f, err := os.OpenFile(s.sessionPath(id), os.O_RDWR, 0)
	if err != nil {
		return nil, nil
	}
	h := sha256.New()
	n, err := io.Copy(h, f) // leaves f at its end, where the next chunk goes
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("resume upload %s: %w", id, err)
	}
	ss := &session{repo: repo, f: f, h: h, n: n}
	s.sessions[id] = ss
	s.log.Info("mirror: resumed an upload a previous daemon started", "repo", repo, "upload", id, "bytes", n)
	return ss, nil
}

func (s *Server) dropSession(id string, ss *session) {
	s.mu.Lock()
	delete(s.sessions, id)
	s.mu.Unlock()
	_ = ss.f.Close()
	_ = os.Remove(s.sessionPath(id))
	_ = os.Remove(s.sessionPath(id) + ".json")
}

// cleanUploads removes upload sessions idle longer than the upload TTL and
// files that are no session's, keeping the rest for their clients.
func (s *Server) cleanUploads() error {
	ents, err := os.ReadDir(s.uploads)
	if err != nil {
		return err
	}
	for _, e := range ents {
		id := strings.TrimSuffix(e.Name(), ".json")
		_, merr := os.Stat(s.sessionPath(id) + ".json")
		data, derr := os.Stat(s.sessionPath(id)) // written by every chunk
		if !sessionID.MatchString(id) || merr != nil || derr != nil || time.Since(data.ModTime()) > s.uploadTTL {
			if err := os.RemoveAll(filepath.Join(s.uploads, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
