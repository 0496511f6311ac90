package machine

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/guest/treetar"
)

// Files in and out of a started machine (docker cp) go through ferry-init's
// archive helper (guest.ArchiveHelperArg), run by Exec as root in the
// machine's root; what it streams is a tree stream, made a tar here.

// archive runs the helper's op on p with stdin and stdout.
func (m *Manager) archive(ctx context.Context, app, ref, op, p string, stdin io.Reader, stdout io.Writer) error {
	if !path.IsAbs(p) {
		return fmt.Errorf("path %q: must be absolute: %w", p, errdefs.ErrInvalidArgument)
	}
	var stderr bytes.Buffer
	req := types.ExecRequest{Cmd: []string{guest.BuildHelper, guest.ArchiveHelperArg, op, path.Clean(p)}, User: "0", Stdin: stdin != nil}
	code, err := m.Exec(ctx, app, ref, req, guest.ExecIO{Stdin: stdin, Stdout: stdout, Stderr: &stderr})
	if err != nil {
		return err
	}
	msg := strings.TrimSpace(stderr.String())
	switch code {
	case 0:
		return nil
	case guest.ArchiveNotFound:
		return fmt.Errorf("%s: %w", msg, errdefs.ErrNotFound)
	case guest.ArchiveNotDir:
		return fmt.Errorf("%s: %w", msg, errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("copy %s %s: %s (exit %d)", op, p, msg, code)
}

// StatPath describes path p in a started machine.
func (m *Manager) StatPath(ctx context.Context, app, ref, p string) (guest.PathStat, error) {
	var out bytes.Buffer
	var st guest.PathStat
	if err := m.archive(ctx, app, ref, guest.ArchiveStat, p, nil, &out); err != nil {
		return st, err
	}
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		return st, fmt.Errorf("stat %s: %w", p, err)
	}
	return st, nil
}

// CopyFrom writes path p of a started machine to w as a tar whose entries
// are named from p's base name (Docker's GET archive).
func (m *Manager) CopyFrom(ctx context.Context, app, ref, p string, w io.Writer) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		tw := tar.NewWriter(w)
		err := treetar.ToTar(pr, tw)
		if err == nil {
			err = tw.Close()
		}
		pr.CloseWithError(err)
		done <- err
	}()
	err := m.archive(ctx, app, ref, guest.ArchiveGet, p, nil, pw)
	pw.CloseWithError(err)
	if cerr := <-done; err == nil && cerr != nil {
		err = fmt.Errorf("copy %s: %w", p, cerr)
	}
	return err
}

// CopyTo extracts the tar r under the existing directory dir of a started
// machine (Docker's PUT archive).
func (m *Manager) CopyTo(ctx context.Context, app, ref, dir string, r io.Reader) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(treetar.FromTar(r, pw)) }()
	err := m.archive(ctx, app, ref, guest.ArchivePut, dir, pr, io.Discard)
	pr.CloseWithError(io.ErrClosedPipe)
	return err
}

// Processes lists a started machine's processes (docker top) through
// ferry-init's process lister (guest.ProcessesHelperArg).
func (m *Manager) Processes(ctx context.Context, app, ref string) ([]guest.ProcessInfo, error) {
	var out, stderr bytes.Buffer
	req := types.ExecRequest{Cmd: []string{guest.BuildHelper, guest.ProcessesHelperArg}, User: "0"}
	code, err := m.Exec(ctx, app, ref, req, guest.ExecIO{Stdout: &out, Stderr: &stderr})
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return nil, fmt.Errorf("list processes: %s (exit %d)", strings.TrimSpace(stderr.String()), code)
	}
	var ps []guest.ProcessInfo
	if err := json.Unmarshal(out.Bytes(), &ps); err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	return ps, nil
}
