// Package s3test starts a throwaway S3-compatible server for tests of the
// registry's S3 storage: SeaweedFS's `weed mini` (master, volume server,
// filer and S3 gateway in one process), listening on 127.0.0.1 only, with
// one access key and one bucket, stopped and deleted when the test ends.
package s3test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// Server is a running S3 server.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	Bucket    string
	AccessKey string
	SecretKey string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// Storage is the registry's storage section for this server: distribution's
// s3 driver, its objects under rootDir in the bucket.
func (s *Server) Storage(rootDir string) configuration.Storage {
	return configuration.Storage{
		"s3": configuration.Parameters{
			"region":         s.Region,
			"regionendpoint": s.Endpoint,
			"bucket":         s.Bucket,
			"accesskey":      s.AccessKey,
			"secretkey":      s.SecretKey,
			"forcepathstyle": true,
			"secure":         false,
			"rootdirectory":  rootDir,
		},
	}
}

// Start starts a server for t, stopped in t.Cleanup. It skips t, saying
// how to install it, when SeaweedFS's weed is missing.
func Start(t testing.TB) *Server {
	t.Helper()
	weed := prereq.Tool(t, "weed")
	dir, err := os.MkdirTemp("", "s3test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ports := freePorts(t, 10)
	s := &Server{
		Region: "us-east-1", Bucket: "ferry-test",
		AccessKey: "ferrytestaccess", SecretKey: "ferrytestsecret0123456789",
		Endpoint: "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		exited:   make(chan struct{}),
	}
	// -logtostderr: glog would otherwise write its files into /tmp.
	args := []string{"-logtostderr", "mini", "-dir=" + dir, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-s3.port=" + strconv.Itoa(ports[0]), "-s3.port.grpc=" + strconv.Itoa(ports[1]),
		"-master.port=" + strconv.Itoa(ports[2]), "-master.port.grpc=" + strconv.Itoa(ports[3]),
		"-volume.port=" + strconv.Itoa(ports[4]), "-volume.port.grpc=" + strconv.Itoa(ports[5]),
		"-filer.port=" + strconv.Itoa(ports[6]), "-filer.port.grpc=" + strconv.Itoa(ports[7]),
		"-admin.port=" + strconv.Itoa(ports[8]), "-admin.port.grpc=" + strconv.Itoa(ports[9]), "-admin.port.legacy=0",
		"-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
		"-master.telemetry=false", "-master.volumeSizeLimitMB=64",
		"-filer.localSocket=" + filepath.Join(dir, "filer.sock"), "-s3.localSocket=" + filepath.Join(dir, "s3.sock"),
	}
	cmd := exec.Command(weed, args...)
	cmd.Dir = dir
	// weed mini makes the access key an admin identity and creates the bucket.
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir,
		"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey, "S3_BUCKET=" + s.Bucket}
	logf, err := os.Create(filepath.Join(dir, "weed.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("s3test: start weed: %v", err)
	}
	s.cmd = cmd
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(s.exited) }()
	t.Cleanup(func() {
		s.stop()
		// weed mini puts its local gRPC sockets in /tmp, named by port.
		for _, p := range ports {
			for _, svc := range []string{"master", "volume", "filer", "s3", "admin"} {
				_ = os.Remove(fmt.Sprintf("/tmp/seaweedfs-%s-grpc-%d.sock", svc, p))
			}
		}
	})
	if err := s.waitBucket(60 * time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "weed.log"))
		t.Fatalf("s3test: %v\nweed log:\n%s", err, tail(log, 4000))
	}
	return s
}

// waitBucket waits until the gateway answers for the bucket (403 without
// credentials means it exists; 404 that it is not created yet).
func (s *Server) waitBucket(d time.Duration) error {
	deadline := time.Now().Add(d)
	c := &http.Client{Timeout: 2 * time.Second}
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("weed exited before serving S3")
		default:
		}
		resp, err := c.Head(s.Endpoint + "/" + s.Bucket)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("S3 bucket %s not served after %s (last: %s)", s.Bucket, d, last)
}

func (s *Server) stop() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// freePorts returns n distinct TCP ports free on 127.0.0.1 just now.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, l)
		p := l.Addr().(*net.TCPAddr).Port
		if p+10000 > 65535 { // weed may derive grpc ports as port+10000
			continue
		}
		ports = append(ports, p)
	}
	return ports
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
