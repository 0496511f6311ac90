package controlplane

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// HostCapacity measures this host: CPUs, total and available memory
// (/proc/meminfo), and the size and free space of the filesystem holding
// root.
func HostCapacity(root string) (size, free Capacity, err error) {
	size.CPUs, free.CPUs = runtime.NumCPU(), runtime.NumCPU()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return size, free, fmt.Errorf("host capacity: %w", err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "MemTotal":
			size.MemoryMB = kb / 1024
		case "MemAvailable":
			free.MemoryMB = kb / 1024
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err != nil {
		return size, free, fmt.Errorf("host capacity of %s: %w", root, err)
	}
	size.DiskMB = int64(st.Blocks) * st.Bsize >> 20
	free.DiskMB = int64(st.Bavail) * st.Bsize >> 20
	return size, free, nil
}

// HostID returns the id this host joins with, kept in root/host-id (made
// on first use), so a restarted daemon re-registers as the same host.
func HostID(root string) (string, error) {
	p := filepath.Join(root, "host-id")
	if b, err := os.ReadFile(p); err == nil {
		if id := strings.TrimSpace(string(b)); hostID.MatchString(id) {
			return id, nil
		}
		return "", fmt.Errorf("host id in %s is not [a-z0-9-]{1,63}: remove the file to make a new one", p)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	id := "h-" + hex.EncodeToString(b)
	if err := os.WriteFile(p, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("host id: %w", err)
	}
	return id, nil
}
