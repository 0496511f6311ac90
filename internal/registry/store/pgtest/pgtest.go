// Package pgtest starts a throwaway PostgreSQL server for tests of the
// registry's Postgres metadata path. The server listens on a unix socket in
// a private temp dir only (no TCP), runs with durability off, and is stopped
// and deleted when the test ends.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// EnvDSN names an existing, empty database to use instead of a throwaway
// server (all tests then share it).
const EnvDSN = "FERRY_TEST_POSTGRES_DSN"

// port is the port number in the socket's name (.s.PGSQL.<port>); with no
// TCP listener and a private socket dir it cannot collide with anything.
const port = 5432

// DSN returns a postgres:// DSN of an empty database "ferry" on a server
// started for t and stopped in t.Cleanup, or FERRY_TEST_POSTGRES_DSN when
// set. It skips t, naming the package to install, when the PostgreSQL
// server binaries are missing.
func DSN(t testing.TB) string {
	t.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn
	}
	bin := binDir()
	if bin == "" {
		prereq.Missing(t, "the PostgreSQL server (initdb, pg_ctl, postgres under /usr/lib/postgresql/*/bin)", prereq.Remedy("postgres"))
	}
	cred, err := runAs()
	if err != nil {
		prereq.Missing(t, "the postgres system user to run the server as root ("+err.Error()+")", prereq.Remedy("postgres"))
	}
	// A short path: the socket's full name must fit in sun_path (107 bytes).
	dir, err := os.MkdirTemp("", "pgtest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	for _, d := range []string{data, sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if cred != nil {
		for _, d := range []string{dir, data, sock} {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	initdb := command(cred, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	srv := command(cred, filepath.Join(bin, "postgres"), "-D", data, "-k", sock, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=50", "-c", "shared_buffers=16MB")
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		_ = logf.Close()
		t.Fatalf("pgtest: start postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); _ = logf.Close(); close(exited) }()
	t.Cleanup(func() {
		// SIGQUIT: immediate shutdown; the data dir is thrown away.
		_ = srv.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = srv.Process.Kill()
			<-exited
		}
	})
	base := fmt.Sprintf("postgres:///%%s?host=%s&port=%d&user=postgres&sslmode=disable", sock, port)
	if err := createDB(fmt.Sprintf(base, "postgres"), exited); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
		t.Fatalf("pgtest: %v\npostgres log:\n%s", err, log)
	}
	return fmt.Sprintf(base, "ferry")
}

// createDB waits until the server accepts connections, then creates the
// database "ferry".
func createDB(admin string, exited <-chan struct{}) error {
	db, err := sql.Open("pgx", admin)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("postgres exited before accepting connections: %w", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not accepting connections after 30s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := db.Exec(`CREATE DATABASE ferry`); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	return nil
}

// binDir returns the newest /usr/lib/postgresql/N/bin holding the server
// binaries, or "".
func binDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		ok := true
		for _, b := range []string{"initdb", "postgres"} {
			if _, err := os.Stat(filepath.Join(d, b)); err != nil {
				ok = false
			}
		}
		if ok {
			return d
		}
	}
	return ""
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// runAs returns the credential to run the server with: nil when not root
// (the server runs as the caller), the postgres system user's when root
// (initdb and postgres refuse to run as root).
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, err
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("postgres user %s:%s: %w", u.Uid, u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// command builds a command run as cred (nil: as the caller), with a clean
// locale and no inherited PG* settings.
func command(cred *syscall.Credential, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	env := []string{"LC_ALL=C", "PATH=" + filepath.Dir(bin) + ":/usr/bin:/bin"}
	for _, e := range os.Environ() {
		if strings.HasPrefix(e, "TZ=") {
			env = append(env, e)
		}
	}
	cmd.Env = env
	cmd.Dir = "/"
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return cmd
}
