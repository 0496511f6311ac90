package network

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// IPv6 has no route_localnet: the kernel never routes a packet from ::1 out
// of a bridge, so a DNAT rule cannot serve [::1]:PORT the way 127.0.0.1 is
// served. The service therefore proxies TCP on [::1] in userspace, as
// Docker's docker-proxy does: for every published TCP port whose host
// address is ::1 or unset, a listener on [::1]:PORT in the network's
// namespace relays each connection to the machine (its IPv6 address, else
// its IPv4 one). The output chain leaves ::1 alone so the listener gets it.
// Unlike the kernel rules it lives with the daemon (Open starts it again);
// UDP on [::1] is not proxied.

type proxy struct {
	l     net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// startProxies opens rec's [::1] listeners (s.mu held). A port another
// process holds on [::1] is skipped: the kernel rules still serve every
// other address.
func (s *Service) startProxies(rec *machineRecord) {
	eps := rec.endpoints()
	if len(eps) == 0 {
		return
	}
	target := eps[0].IPv6.Addr()
	if !target.IsValid() {
		target = eps[0].IPv4.Addr()
	}
	for _, p := range rec.ports() {
		if p.Protocol != "tcp" || (p.HostIP.IsValid() && p.HostIP != netip.IPv6Loopback()) {
			continue
		}
		key := proxyKey{rec.MachineID, p.HostPort}
		if _, ok := s.proxies[key]; ok {
			continue
		}
		var l net.Listener
		err := s.ns.do(func() (err error) {
			l, err = net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(int(p.HostPort))))
			return err
		})
		if err != nil {
			s.log.Debug("network: no [::1] proxy", "machine", rec.MachineID, "port", p, "err", err)
			continue
		}
		px := &proxy{l: l, conns: map[net.Conn]bool{}}
		s.proxies[key] = px
		to := net.JoinHostPort(target.String(), strconv.Itoa(int(p.GuestPort)))
		px.wg.Add(1)
		go s.serveProxy(px, to)
	}
}

func (s *Service) serveProxy(px *proxy, to string) {
	defer px.wg.Done()
	for {
		c, err := px.l.Accept()
		if err != nil {
			return
		}
		px.wg.Add(1)
		go func() {
			defer px.wg.Done()
			defer c.Close()
			var up net.Conn
			if err := s.ns.do(func() (err error) {
				up, err = net.DialTimeout("tcp", to, 5*time.Second)
				return err
			}); err != nil {
				return
			}
			defer up.Close()
			if !px.track(c, up) {
				return
			}
			defer px.untrack(c, up)
			done := make(chan struct{}, 2)
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				done <- struct{}{}
			}
			go pipe(up, c)
			go pipe(c, up)
			<-done
			<-done
		}()
	}
}

func (px *proxy) track(cs ...net.Conn) bool {
	px.mu.Lock()
	defer px.mu.Unlock()
	if px.conns == nil {
		return false
	}
	for _, c := range cs {
		px.conns[c] = true
	}
	return true
}

func (px *proxy) untrack(cs ...net.Conn) {
	px.mu.Lock()
	defer px.mu.Unlock()
	for _, c := range cs {
		delete(px.conns, c)
	}
}

func (px *proxy) close() {
	err := px.l.Close()
	px.mu.Lock()
	for c := range px.conns {
		_ = c.Close()
	}
	px.conns = nil
	px.mu.Unlock()
	if err == nil || errors.Is(err, net.ErrClosed) {
		px.wg.Wait()
	}
}

// proxyKey names a machine's [::1] listener.
type proxyKey struct {
	machine string
	port    uint16
}

// stopProxies closes the machine's listeners and connections (s.mu held);
// every machine's when id is "".
func (s *Service) stopProxies(id string) {
	for key, px := range s.proxies {
		if id == "" || key.machine == id {
			px.close()
			delete(s.proxies, key)
		}
	}
}
