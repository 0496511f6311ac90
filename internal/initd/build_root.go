package initd

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// inRoot resolves p (absolute, as seen inside root) to a host path under
// root, following symlinks the way the kernel would after chroot(root):
// absolute targets and ".." stop at root. The last component is followed
// only when follow is set. Missing components are kept as they are.
func inRoot(root, p string, follow bool) (string, error) {
	todo := splitPath(p)
	var done []string
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		cur := filepath.Join(append([]string{root}, append(done, c)...)...)
		fi, err := os.Lstat(cur)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 || (len(todo) == 0 && !follow) {
			done = append(done, c)
			if err != nil && len(todo) > 0 && errors.Is(err, os.ErrNotExist) {
				done = append(done, todo...)
				todo = nil
			}
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(cur)
		if err != nil {
			return "", err
		}
		base := "/"
		if !path.IsAbs(target) {
			base += strings.Join(done, "/")
		}
		todo = append(splitPath(path.Join(base, target)), todo...)
		done = nil
	}
	return filepath.Join(append([]string{root}, done...)...), nil
}

func splitPath(p string) []string {
	p = strings.Trim(path.Clean("/"+p), "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// mkdirInRoot creates the directory p inside root (resolving symlinks in
// it inside root) and returns its host path and the directories it
// created, outermost first.
func mkdirInRoot(root, p string, mode os.FileMode, uid, gid int) (string, []string, error) {
	var made []string
	cur := root
	for _, c := range splitPath(p) {
		next, err := inRoot(root, strings.TrimPrefix(cur, root)+"/"+c, true)
		if err != nil {
			return "", made, err
		}
		fi, err := os.Stat(next)
		switch {
		case err == nil && !fi.IsDir():
			return "", made, fmt.Errorf("%s: %s is not a directory", p, strings.TrimPrefix(next, root))
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(next, mode); err != nil {
				return "", made, err
			}
			_ = os.Lchown(next, uid, gid)
			made = append(made, next)
		case err != nil:
			return "", made, err
		}
		cur = next
	}
	return cur, made, nil
}
