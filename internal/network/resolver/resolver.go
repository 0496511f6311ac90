// Package resolver is the DNS server ferry runs on each network's gateway
// addresses, built on github.com/miekg/dns. It answers, authoritatively and
// with short TTLs, for the machines on its own network — their names and
// aliases, bare and as NAME.APP.internal, A and AAAA; a machine on several
// networks also finds its other networks' machines — and forwards every
// other question with more than one label to the host's upstream
// resolvers. Over UDP it answers for machines in the order the questions
// came (some clients match replies by ID alone). Its records are replaced
// whole (SetRecords, SetViews) whenever a machine starts, stops, is
// renamed or changes networks, so an answer never outlives the machine it
// names.
//
// It owns no sockets of its own making: the caller opens the listeners (in
// the network's namespace) and hands them to Serve.
package resolver

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/netutil"
)

// Domain is the zone machines are named in: NAME.APP.internal.
const Domain = "internal"

// MaxTCPConns bounds the TCP connections a server serves at once (more
// wait in the listen backlog), so a guest opening connections cannot take
// the daemon's file descriptors; UDP questions are not held up by them.
const MaxTCPConns = 64

// TTL of every answer about a machine, in seconds: short, so a machine that
// stopped or moved is forgotten within seconds even by caching clients.
const TTL = 5

// Record is one machine on the network.
type Record struct {
	Name    string // machine name
	App     string
	Aliases []string
	IPv4    netip.Addr
	IPv6    netip.Addr // zero: none
}

// Config is a server's setup.
type Config struct {
	// Upstreams are "host:port" or bare addresses (port 53) to forward
	// other names to, tried in order.
	Upstreams []string
	Logger    *slog.Logger
	// Timeout per upstream exchange; default 2 s.
	Timeout time.Duration
	// NoForward answers names that are not machines' with REFUSED instead
	// of asking the upstreams: an --internal network's resolver, so no
	// question (a DNS tunnel) leaves the network either.
	NoForward bool
	// MaxForwards bounds the questions being forwarded at once (each holds
	// a goroutine and a socket for up to two timeouts); past it a question
	// gets SERVFAIL at once, so a guest flooding names it cannot have
	// answered costs bounded memory. Default 128.
	MaxForwards int
}

// Server answers one network's questions.
type Server struct {
	cfg     Config
	zone    atomic.Pointer[map[string][]Record]                // lower-case FQDN → machines
	views   atomic.Pointer[map[netip.Addr]map[string][]Record] // client → more names
	mu      sync.Mutex
	servers []*dns.Server
	udp     *dns.Client
	tcp     *dns.Client
	fwd     chan struct{} // a slot per question being forwarded
}

// New returns a server with no records.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxForwards <= 0 {
		cfg.MaxForwards = 128
	}
	for i, u := range cfg.Upstreams {
		if _, _, err := net.SplitHostPort(u); err != nil {
			cfg.Upstreams[i] = net.JoinHostPort(u, "53")
		}
	}
	s := &Server{cfg: cfg, fwd: make(chan struct{}, cfg.MaxForwards),
		udp: &dns.Client{Net: "udp", Timeout: cfg.Timeout},
		tcp: &dns.Client{Net: "tcp", Timeout: cfg.Timeout}}
	s.SetRecords(nil)
	return s
}

// SetRecords replaces the zone: each record answers for its name and
// aliases, bare and as NAME.APP.internal (guests search APP.internal, and
// some resolvers, busybox's among them, try only the searched form).
func (s *Server) SetRecords(recs []Record) {
	z := zoneOf(recs)
	s.zone.Store(&z)
}

// SetViews replaces the names some clients see besides the zone, by the
// client's address: a machine on several networks asks its first
// network's resolver and finds the machines of its other networks there
// too (the zone's own answer wins a name both hold).
func (s *Server) SetViews(views map[netip.Addr][]Record) {
	v := make(map[netip.Addr]map[string][]Record, len(views))
	for a, recs := range views {
		v[a.Unmap()] = zoneOf(recs)
	}
	s.views.Store(&v)
}

func zoneOf(recs []Record) map[string][]Record {
	z := map[string][]Record{}
	add := func(name string, r Record) {
		if name == "" {
			return
		}
		k := dns.Fqdn(strings.ToLower(name))
		z[k] = append(z[k], r)
	}
	for _, r := range recs {
		for _, n := range append([]string{r.Name}, r.Aliases...) {
			add(n, r)
			if r.App != "" {
				add(n+"."+r.App+"."+Domain, r)
			}
		}
	}
	return z
}

// lookup is what name means to client: the zone's machines, else those of
// the client's view.
func (s *Server) lookup(name string, client netip.Addr) ([]Record, bool) {
	if recs, ok := (*s.zone.Load())[name]; ok {
		return recs, true
	}
	if v := s.views.Load(); v != nil {
		recs, ok := (*v)[client.Unmap()][name]
		return recs, ok
	}
	return nil, false
}

// clientAddr is the address a question came from (zero when unknown).
func clientAddr(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// Serve answers on the given sockets until Close; it returns at once.
func (s *Server) Serve(pcs []net.PacketConn, ls []net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pc := range pcs {
		srv := &dns.Server{PacketConn: pc, Handler: s, DecorateReader: s.inOrder}
		s.servers = append(s.servers, srv)
		go s.run(srv)
	}
	for _, l := range ls {
		srv := &dns.Server{Listener: netutil.LimitListener(l, MaxTCPConns), Handler: s}
		s.servers = append(s.servers, srv)
		go s.run(srv)
	}
}

// inOrder answers every UDP question the zone holds on the socket's read
// loop, so a client's questions about machines are answered in the order
// it asked them. miekg's server handles each datagram on a goroutine of
// its own, and a client that gives its A and AAAA questions one ID —
// busybox's nslookup does on a guest whose clock ticks coarsely, as under
// TCG — matches replies that overtake each other to the wrong question
// ("No answer" for a machine that has an address). Only questions to
// forward go on to the handler.
type inOrder struct {
	dns.PacketConnReader
	s *Server
}

func (s *Server) inOrder(r dns.Reader) dns.Reader {
	if pr, ok := r.(dns.PacketConnReader); ok {
		return inOrder{pr, s}
	}
	return r
}

func (r inOrder) ReadUDP(conn *net.UDPConn, timeout time.Duration) ([]byte, *dns.SessionUDP, error) {
	for {
		b, sess, err := r.PacketConnReader.ReadUDP(conn, timeout)
		if err != nil {
			return b, sess, err
		}
		out := r.s.localWire(b, clientAddr(sess.RemoteAddr()))
		if out == nil {
			return b, sess, nil
		}
		if _, err := dns.WriteToSessionUDP(conn, out, sess); err != nil {
			r.s.cfg.Logger.Debug("dns reply failed", "to", sess.RemoteAddr(), "err", err)
		}
	}
}

func (r inOrder) ReadPacketConn(conn net.PacketConn, timeout time.Duration) ([]byte, net.Addr, error) {
	for {
		b, from, err := r.PacketConnReader.ReadPacketConn(conn, timeout)
		if err != nil {
			return b, from, err
		}
		out := r.s.localWire(b, clientAddr(from))
		if out == nil {
			return b, from, nil
		}
		if _, err := conn.WriteTo(out, from); err != nil {
			r.s.cfg.Logger.Debug("dns reply failed", "to", from, "err", err)
		}
	}
}

// localWire is the packed UDP reply to the datagram b when the zone alone
// answers it (truncated to what the client accepts), or nil: not a
// question we answer here (it goes to the handler, which forwards it or
// refuses it).
func (s *Server) localWire(b []byte, client netip.Addr) []byte {
	req := new(dns.Msg)
	if err := req.Unpack(b); err != nil || req.Response {
		return nil
	}
	m := s.local(req, client)
	if m == nil {
		return nil
	}
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
		size = int(opt.UDPSize())
	}
	m.Truncate(size)
	out, err := m.Pack()
	if err != nil {
		return nil
	}
	return out
}

func (s *Server) run(srv *dns.Server) {
	if err := srv.ActivateAndServe(); err != nil && !strings.Contains(err.Error(), "closed") {
		s.cfg.Logger.Warn("dns server stopped", "err", err)
	}
}

// Close stops serving and closes the sockets.
func (s *Server) Close() {
	s.mu.Lock()
	srvs := s.servers
	s.servers = nil
	s.mu.Unlock()
	for _, srv := range srvs {
		_ = srv.Shutdown()
		if srv.PacketConn != nil {
			_ = srv.PacketConn.Close()
		}
		if srv.Listener != nil {
			_ = srv.Listener.Close()
		}
	}
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if m := s.local(req, clientAddr(w.RemoteAddr())); m != nil {
		_ = w.WriteMsg(m)
		return
	}
	if s.cfg.NoForward {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		_ = w.WriteMsg(m)
		return
	}
	_ = w.WriteMsg(s.forward(req, w.LocalAddr().Network()))
}

// local is the reply to req that needs no upstream — a machine's
// addresses, NXDOMAIN for a name that is ours alone, NOTIMP for what is
// not one plain question — or nil: forward it.
func (s *Server) local(req *dns.Msg, client netip.Addr) *dns.Msg {
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeNotImplemented)
		return m
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if q.Qclass != dns.ClassINET {
		return nil
	}
	if recs, ok := s.lookup(name, client); ok {
		return answer(req, q, recs)
	}
	// Names under .internal are ours alone; a single label is a machine
	// name or nothing (never leaked upstream).
	if name == Domain+"." || strings.HasSuffix(name, "."+Domain+".") || strings.Count(name, ".") == 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeNameError)
		m.Authoritative = true
		return m
	}
	return nil
}

// answer builds the authoritative reply for a name the zone holds: A or
// AAAA records of every machine with it (aliases may be shared), none for
// other types (NODATA).
func answer(req *dns.Msg, q dns.Question, recs []Record) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: TTL}
	for _, r := range recs {
		switch {
		case q.Qtype == dns.TypeA && r.IPv4.IsValid():
			h := hdr
			h.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: h, A: r.IPv4.AsSlice()})
		case q.Qtype == dns.TypeAAAA && r.IPv6.IsValid():
			h := hdr
			h.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: h, AAAA: r.IPv6.AsSlice()})
		}
	}
	return m
}

// forward asks the upstreams in turn, over the transport the question came
// on, and returns the first answer, or SERVFAIL.
func (s *Server) forward(req *dns.Msg, network string) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	select {
	case s.fwd <- struct{}{}:
		defer func() { <-s.fwd }()
	default:
		return m // MaxForwards are in flight
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.cfg.Timeout)
	defer cancel()
	c := s.udp
	if network == "tcp" {
		c = s.tcp
	}
	for _, up := range s.cfg.Upstreams {
		resp, _, err := c.ExchangeContext(ctx, req, up)
		if err == nil { // a truncated UDP answer goes back as is: the client retries over TCP
			return resp
		}
		s.cfg.Logger.Debug("dns forward failed", "upstream", up, "name", req.Question[0].Name, "err", err)
		if ctx.Err() != nil {
			break
		}
	}
	return m
}
