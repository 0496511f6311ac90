package firecracker

import "encoding/json"

// Config is Firecracker's --config-file: the FullVmConfiguration of its API
// (see testdata/firecracker-swagger.yaml), limited to what ferry sets.
type Config struct {
	BootSource        BootSource         `json:"boot-source"`
	Drives            []Drive            `json:"drives"`
	NetworkInterfaces []NetworkInterface `json:"network-interfaces,omitempty"`
	MachineConfig     MachineConfig      `json:"machine-config"`
	Vsock             *Vsock             `json:"vsock,omitempty"`
	Logger            *Logger            `json:"logger,omitempty"`
}

// BootSource is the kernel, initrd and command line.
type BootSource struct {
	KernelImagePath string `json:"kernel_image_path"`
	InitrdPath      string `json:"initrd_path,omitempty"`
	BootArgs        string `json:"boot_args,omitempty"`
}

// Drive is a virtio-block device.
type Drive struct {
	DriveID      string `json:"drive_id"`
	PathOnHost   string `json:"path_on_host"`
	IsRootDevice bool   `json:"is_root_device"`
	IsReadOnly   bool   `json:"is_read_only"`
}

// NetworkInterface is a virtio-net device on a host TAP.
type NetworkInterface struct {
	IfaceID     string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
	GuestMAC    string `json:"guest_mac,omitempty"`
}

// MachineConfig is vCPUs and memory.
type MachineConfig struct {
	VCPUCount  int  `json:"vcpu_count"`
	MemSizeMiB int  `json:"mem_size_mib"`
	SMT        bool `json:"smt"`
}

// Vsock is the hybrid vsock device: host connections arrive on UDSPath.
type Vsock struct {
	GuestCID uint32 `json:"guest_cid"`
	UDSPath  string `json:"uds_path"`
}

// Logger sends Firecracker's own log to a file.
type Logger struct {
	LogPath       string `json:"log_path"`
	Level         string `json:"level,omitempty"`
	ShowLevel     bool   `json:"show_level"`
	ShowLogOrigin bool   `json:"show_log_origin"`
}

// JSON returns the config as indented JSON.
func (c *Config) JSON() []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return append(b, '\n')
}
