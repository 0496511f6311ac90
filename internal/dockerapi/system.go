package dockerapi

import (
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/moby/moby/api/types/system"
	"golang.org/x/sys/unix"
)

// GET|HEAD /_ping. Builder-Version 1 tells the CLI to use the classic
// POST /build (ferry's builder) rather than a BuildKit session.
func (s *Server) ping(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Builder-Version", "1")
	h.Set("Docker-Experimental", "false")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte("OK"))
	}
	return nil
}

func kernelVersion() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// GET /version
func (s *Server) version(w http.ResponseWriter, r *http.Request) error {
	v := system.VersionResponse{Platform: system.PlatformInfo{Name: "ferry"}, Version: s.cfg.Version,
		APIVersion: MaxAPIVersion, MinAPIVersion: MinAPIVersion, Os: runtime.GOOS, Arch: runtime.GOARCH,
		GoVersion: runtime.Version(), KernelVersion: kernelVersion(),
		Components: []system.ComponentVersion{{Name: "Engine", Version: s.cfg.Version,
			Details: map[string]string{"ApiVersion": MaxAPIVersion, "MinAPIVersion": MinAPIVersion, "Os": runtime.GOOS,
				"Arch": runtime.GOARCH, "GoVersion": runtime.Version(), "KernelVersion": kernelVersion()}}}}
	return writeJSON(w, http.StatusOK, v)
}

// GET /info
func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	ms := s.cfg.Machines.List("", true)
	info := system.Info{ID: "ferry", Driver: "ferry", LoggingDriver: "json-file", CgroupDriver: "none",
		OSType: "linux", OperatingSystem: "ferry (micro-VMs)", Architecture: runtime.GOARCH, NCPU: runtime.NumCPU(),
		KernelVersion: kernelVersion(), DockerRootDir: s.cfg.Root, ServerVersion: s.cfg.Version,
		SystemTime: time.Now().Format(time.RFC3339Nano), IndexServerAddress: "https://index.docker.io/v1/",
		DefaultRuntime: "ferry", MemoryLimit: true, Isolation: "", Warnings: []string{},
		Runtimes: map[string]system.RuntimeWithStatus{"ferry": {}}}
	info.Name, _ = os.Hostname()
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		info.MemTotal = int64(si.Totalram) * int64(si.Unit)
	}
	for _, m := range ms {
		info.Containers++
		switch dockerState(m) {
		case "running":
			info.ContainersRunning++
		default:
			info.ContainersStopped++
		}
	}
	if list, err := s.cfg.Images.List(r.Context(), true); err == nil {
		info.Images = len(list)
	}
	return writeJSON(w, http.StatusOK, info)
}
