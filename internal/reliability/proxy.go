package reliability

import (
	"io"
	"net"
	"sync"
	"time"
)

// Proxy is a TCP forwarder on 127.0.0.1 that a test places between edged
// and a service to cut the network. It stands in for iptables rules on
// loopback (not installed here): edged sees the same socket-level events
// as with a DROP (Blackhole: bytes stop, connections stay open, nothing
// tells the client) or a REJECT/RST (Reset: connections are reset, new ones
// refused).
type Proxy struct {
	// Addr is the proxy's listening address, "127.0.0.1:PORT".
	Addr   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	mode  CutMode
	conns map[*proxyConn]struct{}
	wg    sync.WaitGroup
	gate  *sync.Cond // broadcast when the mode changes
}

// CutMode is how a partition looks to the client.
type CutMode int

const (
	// Open forwards everything.
	Open CutMode = iota
	// Reset closes every connection (the peer sees a reset or EOF) and
	// closes new ones at once: an unreachable peer that answers RST.
	Reset
	// Blackhole stops forwarding in both directions and leaves new
	// connections unanswered: a DROP rule; only timeouts and keep-alives
	// notice.
	Blackhole
)

type proxyConn struct{ a, b net.Conn }

// NewProxy listens on a free loopback port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[*proxyConn]struct{}{}}
	p.gate = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	return p, nil
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		p.mu.Unlock()
		if mode == Reset {
			c.(*net.TCPConn).SetLinger(0) // RST
			c.Close()
			continue
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *Proxy) serve(a net.Conn) {
	// Under Blackhole, a new connection waits unanswered (the SYN was
	// accepted by the kernel's backlog, but nothing comes back).
	p.mu.Lock()
	for p.mode == Blackhole {
		p.gate.Wait()
	}
	if p.mode == Reset || p.ln == nil {
		p.mu.Unlock()
		a.Close()
		return
	}
	p.mu.Unlock()
	b, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		a.(*net.TCPConn).SetLinger(0)
		a.Close()
		return
	}
	pc := &proxyConn{a, b}
	p.mu.Lock()
	p.conns[pc] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(b, a) })
	wg.Go(func() { p.pipe(a, b) })
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

// pipe copies src to dst, holding bytes while the proxy is blackholed.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.mode == Blackhole {
				p.gate.Wait()
			}
			reset := p.mode == Reset
			p.mu.Unlock()
			if reset {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return
		}
	}
}

// Cut partitions the link: Reset or Blackhole. Restore heals it.
func (p *Proxy) Cut(mode CutMode) {
	p.mu.Lock()
	p.mode = mode
	var conns []*proxyConn
	if mode == Reset {
		for c := range p.conns {
			conns = append(conns, c)
		}
	}
	p.gate.Broadcast()
	p.mu.Unlock()
	for _, c := range conns {
		c.a.(*net.TCPConn).SetLinger(0)
		c.a.Close()
		c.b.Close()
	}
}

// Restore forwards again. Blackholed connections resume where they were,
// as after a healed partition (if neither side timed out meanwhile).
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.mode = Open
	p.gate.Broadcast()
	p.mu.Unlock()
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Cut(Reset)
	p.wg.Wait()
}
