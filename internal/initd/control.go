package initd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// startControl serves the control protocol in the background on whichever
// channel the VMM gave: the virtio-serial port named guest.SerialPortName
// (QEMU) or vsock port guest.VsockPort when a virtio-vsock device is bound
// (Firecracker). Devices are announced asynchronously, so it polls for a
// while.
func (in *Init) startControl() error {
	goSafe(in.log, "control", func() {
		for i := 0; i < 1000; i++ { // ~5 s
			if dev := findSerialPort(guest.SerialPortName); dev != "" {
				in.log.Infof("control channel on %s", dev)
				serveSerial(dev, in.sup, in.log)
				return
			}
			if vsockDevice() {
				if err := serveVsock(in.sup, in.log); err == nil {
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		in.log.Noticef("no control channel (no virtio-serial port %q, no vsock device)", guest.SerialPortName)
	})
	return nil
}

// goSafe runs f in a goroutine that logs a panic instead of taking PID 1
// (and the guest kernel) down.
func goSafe(log *Logger, what string, f func()) {
	go func() {
		defer func() {
			if r := recover(); r != nil {
				log.Must(fmt.Sprintf("error: %s: panic: %v", what, r))
			}
		}()
		f()
	}()
}

// vsockDevice reports whether a virtio-vsock device is bound to its driver
// (/dev/vsock alone exists whenever the vsock core is built in).
func vsockDevice() bool {
	m, _ := filepath.Glob("/sys/bus/virtio/drivers/vmw_vsock_virtio_transport/virtio*")
	return len(m) > 0
}

// findSerialPort returns the /dev node of the virtio-serial port called name.
func findSerialPort(name string) string {
	ports, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, p := range ports {
		b, err := os.ReadFile(p)
		if err == nil && strings.TrimSpace(string(b)) == name {
			dev := "/dev/" + filepath.Base(filepath.Dir(p))
			if _, err := os.Stat(dev); err == nil {
				return dev
			}
		}
	}
	return ""
}

// serveSerial serves sessions on a virtio-serial port forever. While no
// host is connected the port polls as hung up and reads return EOF; init
// checks again (hangupPoll) and starts a session once a host has sent data.
func serveSerial(dev string, h guest.Handler, log *Logger) {
	var wmu sync.Mutex
	var f *os.File
	var hungUp time.Time
	for {
		if f == nil {
			var err error
			f, err = os.OpenFile(dev, os.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			if err != nil {
				log.Infof("open %s: %v", dev, err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
		}
		if !hostData(f) {
			if hungUp.IsZero() {
				hungUp = time.Now()
			}
			time.Sleep(hangupPoll(time.Since(hungUp)))
			continue
		}
		hungUp = time.Time{}
		// Serve returns only when the session ends, always with an error.
		if err := guest.Serve(context.Background(), f, h, guest.WithWriteLock(&wmu)); !isEOF(err) {
			log.Infof("control session on %s: %v", dev, err)
			f.Close()
			f = nil
		}
	}
}

// hangupPoll is how long init sleeps before it checks a hung-up port again,
// since after it hung up: every 5 ms for two seconds, then every 50 ms. A
// warm-start template is saved right after its host hangs up, so a restored
// guest (whose monotonic clock goes on from the save) notices its new host
// within 5 ms; a guest whose daemon is away polls slowly.
func hangupPoll(since time.Duration) time.Duration {
	if since < 2*time.Second {
		return 5 * time.Millisecond
	}
	return 50 * time.Millisecond
}

// hostData waits (in Go's poller, holding no thread) until the port has
// input; false when no host is connected (the port polls as hung up).
func hostData(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return true
	}
	ready := true
	_ = rc.Read(func(fd uintptr) bool {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 0)
		switch {
		case err != nil:
			ready = false
			return true
		case n > 0 && pfd[0].Revents&unix.POLLIN != 0:
			ready = true
			return true
		case n > 0 && pfd[0].Revents&unix.POLLHUP != 0:
			ready = false
			return true
		}
		return false // connected, idle: wait for the poller
	})
	return ready
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, unix.EPIPE)
}

// serveVsock accepts control connections on vsock; each is a session.
func serveVsock(h guest.Handler, log *Logger) error {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: guest.VsockPort}); err != nil {
		_ = unix.Close(fd)
		return err
	}
	if err := unix.Listen(fd, 4); err != nil {
		_ = unix.Close(fd)
		return err
	}
	log.Infof("control channel on vsock port %d", guest.VsockPort)
	go func() {
		for {
			nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
			if err != nil {
				if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
					continue
				}
				log.Noticef("vsock accept: %v", err)
				return
			}
			conn := os.NewFile(uintptr(nfd), "vsock")
			goSafe(log, "vsock session", func() {
				defer conn.Close()
				_ = guest.Serve(context.Background(), conn, h)
			})
		}
	}()
	return nil
}
