package guest

import (
	"fmt"
	"strconv"
)

// decodeConfig decodes a run config the way encoding/json with
// DisallowUnknownFields decodes it into a RunConfig (null leaves a scalar
// as it is and clears a slice or pointer; a repeated key wins), except that
// keys match case-sensitively. The host writes the config with
// encoding/json (Marshal); TestDecodeMatchesJSON and FuzzDecodeConfig hold
// the two to the same results.
func decodeConfig(data []byte, c *RunConfig) error {
	s := &scanner{b: data}
	if err := s.object(func(k string) error { return c.field(s, k) }); err != nil {
		return err
	}
	if s.ws(); s.i != len(s.b) {
		return s.fail("trailing data after the JSON object")
	}
	return nil
}

func unknown(k string) error { return fmt.Errorf("unknown field %q", k) }

func (c *RunConfig) field(s *scanner, k string) error {
	switch k {
	case "version":
		return s.intInto(&c.Version)
	case "id":
		return s.strInto(&c.ID)
	case "image":
		return s.structInto(func(k string) error { return c.Image.field(s, k) })
	case "override":
		return s.structInto(func(k string) error { return c.Override.field(s, k) })
	case "tty":
		return s.boolInto(&c.TTY)
	case "attach":
		return s.boolInto(&c.Attach)
	case "attach_timeout_ms":
		return s.intInto(&c.AttachTimeoutMS)
	case "console_records":
		return s.intInto(&c.ConsoleRecords)
	case "hostname":
		return s.strInto(&c.Hostname)
	case "hosts":
		return sliceInto(s, &c.Hosts, func(h *HostEntry) func(string) error {
			return func(k string) error { return h.field(s, k) }
		})
	case "dns":
		return ptrInto(s, &c.DNS, func(d *DNS) func(string) error { return func(k string) error { return d.field(s, k) } })
	case "network":
		return sliceInto(s, &c.Network, func(n *Interface) func(string) error {
			return func(k string) error { return n.field(s, k) }
		})
	case "root":
		return s.structInto(func(k string) error { return c.Root.field(s, k) })
	case "mounts":
		return sliceInto(s, &c.Mounts, func(m *Mount) func(string) error {
			return func(k string) error { return m.field(s, k) }
		})
	case "rlimits":
		return ptrInto(s, &c.Rlimits, func(r *Rlimits) func(string) error {
			return func(k string) error {
				if k != "nofile" {
					return unknown(k)
				}
				return s.uintInto(&r.NoFile)
			}
		})
	case "cgroup_version":
		return s.strInto(&c.CgroupVersion)
	case "power":
		return s.structInto(func(k string) error { return c.Power.field(s, k) })
	case "debug":
		return s.boolInto(&c.Debug)
	}
	return unknown(k)
}

func (m *Image) field(s *scanner, k string) error {
	switch k {
	case "entrypoint":
		return s.strsInto(&m.Entrypoint)
	case "cmd":
		return s.strsInto(&m.Cmd)
	case "env":
		return s.strsInto(&m.Env)
	case "user":
		return s.strInto(&m.User)
	case "working_dir":
		return s.strInto(&m.WorkingDir)
	}
	return unknown(k)
}

func (o *Override) field(s *scanner, k string) error {
	switch k {
	case "exec":
		return s.strsInto(&o.Exec)
	case "entrypoint":
		return ptrStrsInto(s, &o.Entrypoint)
	case "cmd":
		return ptrStrsInto(s, &o.Cmd)
	case "env":
		return s.strsInto(&o.Env)
	case "user":
		return s.strInto(&o.User)
	case "working_dir":
		return s.strInto(&o.WorkingDir)
	}
	return unknown(k)
}

func (h *HostEntry) field(s *scanner, k string) error {
	switch k {
	case "ip":
		return s.strInto(&h.IP)
	case "names":
		return s.strsInto(&h.Names)
	}
	return unknown(k)
}

func (d *DNS) field(s *scanner, k string) error {
	switch k {
	case "nameservers":
		return s.strsInto(&d.Nameservers)
	case "search":
		return s.strsInto(&d.Search)
	case "options":
		return s.strsInto(&d.Options)
	}
	return unknown(k)
}

func (n *Interface) field(s *scanner, k string) error {
	switch k {
	case "name":
		return s.strInto(&n.Name)
	case "mac":
		return s.strInto(&n.MAC)
	case "addresses":
		return s.strsInto(&n.Addresses)
	case "gateway4":
		return s.strInto(&n.Gateway4)
	case "gateway6":
		return s.strInto(&n.Gateway6)
	case "mtu":
		return s.intInto(&n.MTU)
	}
	return unknown(k)
}

func (r *Root) field(s *scanner, k string) error {
	switch k {
	case "mode":
		return s.strInto(&r.Mode)
	case "device":
		return s.strInto(&r.Device)
	case "fstype":
		return s.strInto(&r.FSType)
	case "scratch":
		return s.strInto(&r.Scratch)
	case "scratch_fstype":
		return s.strInto(&r.ScratchFSType)
	case "wait_ms":
		return s.intInto(&r.WaitMS)
	}
	return unknown(k)
}

func (m *Mount) field(s *scanner, k string) error {
	switch k {
	case "source":
		return s.strInto(&m.Source)
	case "target":
		return s.strInto(&m.Target)
	case "fstype":
		return s.strInto(&m.FSType)
	case "options":
		return s.strsInto(&m.Options)
	case "read_only":
		return s.boolInto(&m.ReadOnly)
	case "name":
		return s.strInto(&m.Name)
	case "encryption":
		return ptrInto(s, &m.Encryption, func(e *Encryption) func(string) error { return func(k string) error { return e.field(s, k) } })
	case "format":
		return s.boolInto(&m.Format)
	case "grow":
		return s.boolInto(&m.Grow)
	}
	return unknown(k)
}

func (e *Encryption) field(s *scanner, k string) error {
	switch k {
	case "type":
		return s.strInto(&e.Type)
	case "key":
		return s.strInto(&e.Key)
	}
	return unknown(k)
}

func (p *Power) field(s *scanner, k string) error {
	switch k {
	case "method":
		return s.strInto(&p.Method)
	case "exit_grace_ms":
		return s.intInto(&p.ExitGraceMS)
	case "stop_grace_ms":
		return s.intInto(&p.StopGraceMS)
	}
	return unknown(k)
}

// Typed values. A null leaves a scalar or struct unchanged and sets a
// slice or pointer to nil, as encoding/json does.

func (s *scanner) structInto(field func(string) error) error {
	if s.null() {
		return nil
	}
	return s.object(field)
}

func (s *scanner) strInto(p *string) error {
	if s.null() {
		return nil
	}
	v, err := s.str()
	if err == nil {
		*p = v
	}
	return err
}

func (s *scanner) boolInto(p *bool) error {
	switch {
	case s.null():
	case s.peek() == 't' && s.lit("true"):
		*p = true
	case s.peek() == 'f' && s.lit("false"):
		*p = false
	default:
		return s.fail("want true or false")
	}
	return nil
}

func (s *scanner) intInto(p *int) error {
	if s.null() {
		return nil
	}
	text, integer, err := s.number()
	if err != nil {
		return err
	}
	n, perr := strconv.ParseInt(text, 10, strconv.IntSize)
	if !integer || perr != nil {
		return fmt.Errorf("number %s is not an int", text)
	}
	*p = int(n)
	return nil
}

func (s *scanner) uintInto(p *uint64) error {
	if s.null() {
		return nil
	}
	text, integer, err := s.number()
	if err != nil {
		return err
	}
	n, perr := strconv.ParseUint(text, 10, 64)
	if !integer || perr != nil {
		return fmt.Errorf("number %s is not a uint64", text)
	}
	*p = n
	return nil
}

func (s *scanner) strsInto(p *[]string) error {
	if s.null() {
		*p = nil
		return nil
	}
	out := []string{}
	err := s.array(func() error {
		var v string
		if err := s.strInto(&v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	if err == nil {
		*p = out
	}
	return err
}

func ptrStrsInto(s *scanner, p **[]string) error {
	if s.null() {
		*p = nil
		return nil
	}
	var v []string
	if err := s.strsInto(&v); err != nil {
		return err
	}
	*p = &v
	return nil
}

// sliceInto decodes an array of objects, each element through the field
// function fields returns for it.
func sliceInto[T any](s *scanner, p *[]T, fields func(*T) func(string) error) error {
	if s.null() {
		*p = nil
		return nil
	}
	out := []T{}
	err := s.array(func() error {
		var v T
		if err := s.structInto(fields(&v)); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	if err == nil {
		*p = out
	}
	return err
}

// ptrInto decodes an object into *p, allocating it when nil.
func ptrInto[T any](s *scanner, p **T, fields func(*T) func(string) error) error {
	if s.null() {
		*p = nil
		return nil
	}
	if *p == nil {
		*p = new(T)
	}
	return s.object(fields(*p))
}
