package testredis

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a loopback TCP relay in front of a server. Cutting it drops
// every connection and refuses new ones, as a network partition would, for
// one client while the others keep their link: a fault a real Redis
// cannot produce on demand for a single client.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	// resume is closed and replaced on Restore; while stalled, relayed
	// bytes wait for it.
	stalled bool
	resume  chan struct{}
	delay   time.Duration // added to every relayed write (SetDelay)
}

// NewProxy relays a free loopback port to target until the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{}), resume: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut drops every relayed connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Blackhole stops relaying without closing anything, as a network that
// drops packets would: connections stay open (new ones are accepted) and
// nothing written on them arrives until Restore, so a client learns of
// the fault only from its own timeouts.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

// Restore lets connections through again (after Cut or Blackhole).
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	if p.stalled {
		p.stalled = false
		close(p.resume)
		p.resume = make(chan struct{})
	}
	p.mu.Unlock()
}

// SetDelay holds every relayed chunk of bytes for d before passing it
// on, in both directions: a slow link (a round trip costs 2d more).
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// gate waits while the proxy is blackholed; false when it was closed.
func (p *Proxy) gate() bool {
	for {
		p.mu.Lock()
		stalled, resume, cut := p.stalled, p.resume, p.cut
		p.mu.Unlock()
		if cut {
			return false
		}
		if !stalled {
			return true
		}
		select {
		case <-resume:
		case <-time.After(50 * time.Millisecond): // to notice a Cut or close
		}
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.conns[up] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			d := p.delay
			p.mu.Unlock()
			if d > 0 {
				time.Sleep(d)
			}
			if !p.gate() {
				break
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

func (p *Proxy) close() {
	p.ln.Close()
	p.Cut()
	p.Restore() // releases stalled relays; Cut has closed their conns
	p.wg.Wait()
}
