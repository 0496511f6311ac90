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
	"github.com/ferryvm/ferry/internal/initd"
)

// Files in and out of a machine (docker cp) go through ferry-init's archive
// helper (guest.ArchiveHelperArg): in a started machine run by Exec as root
// in the machine's root; in a stopped one, the same code (initd.Archive)
// runs on the host in a view of the machine's disks (rootfs View), the
// machine held busy so that it cannot start meanwhile. What the helper
// streams is a tree stream, made a tar here.

// archive runs the helper's op on p with stdin and stdout.
func (m *Manager) archive(ctx context.Context, app, ref, op, p string, stdin io.Reader, stdout io.Writer) error {
	if !path.IsAbs(p) {
		return fmt.Errorf("path %q: must be absolute: %w", p, errdefs.ErrInvalidArgument)
	}
	mc, err := m.Get(app, ref)
	if err != nil {
		return err
	}
	args := []string{op, path.Clean(p)}
	var stderr bytes.Buffer
	var code int
	switch mc.State {
	case types.StateStarted, types.StateStarting:
		if err := m.WaitBooted(ctx, app, mc.ID); err != nil {
			return err
		}
		req := types.ExecRequest{Cmd: append([]string{guest.BuildHelper, guest.ArchiveHelperArg}, args...), User: "0", Stdin: stdin != nil}
		if code, err = m.Exec(ctx, app, mc.ID, req, guest.ExecIO{Stdin: stdin, Stdout: stdout, Stderr: &stderr}); err != nil {
			return err
		}
	default:
		if code, err = m.archiveStopped(ctx, mc.ID, args, stdin, stdout, &stderr); err != nil {
			return err
		}
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

// archiveStopped runs the archive helper's code in the host's view of the
// stopped machine id's disks, writable for a put.
func (m *Manager) archiveStopped(ctx context.Context, id string, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	mc, err := m.acquire(id, "copy")
	if err != nil {
		return 0, err
	}
	defer m.releaseBusy(id)
	switch mc.State {
	case types.StateCreated, types.StateStopped, types.StateFailed:
	default:
		return 0, fmt.Errorf("machine %s is %s: retry the copy: %w", id, mc.State, errdefs.ErrConflict)
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var code int
	err = m.deps.Rootfs.View(ctx, id, args[0] == guest.ArchivePut, func() error {
		var herr error
		if code, herr = initd.Archive(args, stdin, stdout); herr != nil {
			fmt.Fprintln(stderr, herr)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("copy %s %s in stopped machine %s: %w", args[0], args[1], id, err)
	}
	return code, nil
}

// StatPath describes path p in a machine.
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

// CopyFrom writes path p of a machine to w as a tar whose entries
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

// CopyTo extracts the tar r under the existing directory dir of a machine
// (Docker's PUT archive).
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
