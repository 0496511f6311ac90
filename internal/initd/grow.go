package initd

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// GrowMain is ferry-init re-executed as the volume grow helper
// (guest.GrowHelperArg TARGET): the host grew the device under the volume
// mounted at TARGET; grow its dm-crypt mapping and its ext4 to match.
func GrowMain(args []string) int {
	if len(args) != 1 || !path.IsAbs(args[0]) {
		fmt.Fprintf(os.Stderr, "usage: %s ABSOLUTE-MOUNT-POINT\n", guest.GrowHelperArg)
		return 1
	}
	target := path.Clean(args[0])
	src, err := mountSource(target)
	if err == nil && strings.HasPrefix(src, "/dev/mapper/") {
		err = dmGrow(filepath.Base(src))
	}
	if err == nil {
		err = growVolume(src, target, guest.Mount{Name: target, Target: target}, NewLogger(time.Now()))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "grow volume at %s: %v\n", target, err)
		return 1
	}
	return 0
}

// mountSource is the device mounted at target (/proc/self/mountinfo).
func mountSource(target string) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	src := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fs := strings.Fields(sc.Text())
		i := slicesIndex(fs, "-")
		if len(fs) > 4 && i > 0 && i+2 < len(fs) && fs[4] == target {
			src = fs[i+2] // the last mount at target wins
		}
	}
	if src == "" || !strings.HasPrefix(src, "/dev/") {
		return "", fmt.Errorf("no block device is mounted at %s", target)
	}
	return src, sc.Err()
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// Device-mapper table status (DM_TABLE_STATUS with DM_STATUS_TABLE_FLAG:
// the loaded table itself, key included).
var dmTableStatus = dmIoctl(12)

const dmStatusTableFlag = 1 << 4

// dmGrow reloads the crypt mapping name with the length its underlying
// device now allows (it was made for the device's size at boot).
func dmGrow(name string) error {
	ctl, err := os.OpenFile(dmControl, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("device-mapper: %w", err)
	}
	defer ctl.Close()
	b := dmHeader(name, dmStatusTableFlag|dmSecureData, 0, 16<<10)
	defer clear(b)
	if err := dmCall(ctl, dmTableStatus, b); err != nil {
		return fmt.Errorf("dm table of %s: %w", name, err)
	}
	le := binary.NativeEndian
	if le.Uint32(b[20:]) != 1 {
		return fmt.Errorf("dm %s has %d targets, want 1", name, le.Uint32(b[20:]))
	}
	spec := b[le.Uint32(b[16:]):]
	length := le.Uint64(spec[8:])
	typ := string(bytes.TrimRight(spec[24:24+16], "\x00"))
	params := spec[dmTargetSize:]
	params = params[:bytes.IndexByte(params, 0)]
	defer clear(params)
	// crypt: cipher key iv_offset device offset [#opts opts...]
	f := strings.Fields(string(params))
	if typ != "crypt" || len(f) < 5 {
		return fmt.Errorf("dm %s is a %s mapping, not crypt", name, typ)
	}
	offset, err := strconv.ParseUint(f[4], 10, 64)
	if err != nil {
		return fmt.Errorf("dm %s: offset %q", name, f[4])
	}
	raw, err := os.ReadFile("/sys/dev/block/" + f[3] + "/size") // 512-byte sectors
	if err != nil {
		return fmt.Errorf("dm %s: size of %s: %w", name, f[3], err)
	}
	sectors, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil || sectors < offset {
		return fmt.Errorf("dm %s: size of %s: %q", name, f[3], raw)
	}
	want := (sectors - offset) &^ 7 // whole 4 KiB sectors
	if want <= length {
		return nil
	}
	clear(f)
	return dmReload(ctl, name, dmTarget{Start: 0, Length: want, Type: typ, Params: string(params)})
}
