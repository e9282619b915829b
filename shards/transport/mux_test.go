package transport

import (
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// quiet keeps expected refusals out of the test log.
var quiet = WithLogger(slog.New(slog.DiscardHandler))

func listen(t testing.TB, opts ...Option) *Mux {
	t.Helper()
	m, err := Listen("127.0.0.1:0", append([]Option{quiet}, opts...)...)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func group(t testing.TB, m *Mux, id uint64) *Layer {
	t.Helper()
	l, err := m.Group(id)
	if err != nil {
		t.Fatalf("Group(%d): %v", id, err)
	}
	return l
}

func addr(m *Mux) raft.ServerAddress { return raft.ServerAddress(m.Addr().String()) }

// checkGoroutines fails t if the goroutine count does not fall back to base
// within a few seconds.
func checkGoroutines(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines alive; want at most %d as before the test:\n%s", n, base, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHandshakeRoundTrip(t *testing.T) {
	base := runtime.NumGoroutine()
	a, b := listen(t), listen(t)
	la, lb := group(t, a, 7), group(t, b, 7)
	group(t, b, 8) // another group on the same port

	c, err := la.Dial(addr(b), time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	s, err := lb.Accept()
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("server read %q, %v; want ping", buf, err)
	}
	if _, err := s.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("client read %q, %v; want pong", buf, err)
	}
	if got := lb.Addr().String(); got != b.Addr().String() {
		t.Errorf("Layer.Addr() = %s; want the mux's %s", got, b.Addr())
	}
	if sa, sb := a.Stats(), b.Stats(); sa.Dialed != 1 || sa.OpenConns != 1 || sb.Accepted != 1 || sb.OpenConns != 1 || sb.Groups != 2 {
		t.Errorf("Stats() = %+v, %+v; want 1 dialed, 1 accepted, 1 open conn each, 2 groups on b", sa, sb)
	}
	c.Close()
	c.Close() // twice is fine
	waitFor(t, "a's open conns to reach 0", time.Second, func() bool { return a.Stats().OpenConns == 0 })
	a.Close()
	b.Close()
	if n := b.Stats().OpenConns; n != 0 {
		t.Errorf("after Close, OpenConns = %d; want 0", n)
	}
	checkGoroutines(t, base)
}

func TestUnknownGroupRefusedQuickly(t *testing.T) {
	a, b := listen(t), listen(t)
	la := group(t, a, 1)
	group(t, b, 2)
	start := time.Now()
	_, err := la.Dial(addr(b), 10*time.Second)
	if !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("Dial to a node without the group: %v; want ErrUnknownGroup", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusal took %v; want well under the 10s dial timeout", d)
	}
	if !strings.Contains(err.Error(), "group 1") || !strings.Contains(err.Error(), string(addr(b))) {
		t.Errorf("error %q does not name the group and address", err)
	}
	if s := b.Stats(); s.Refused != 1 || s.Accepted != 0 {
		t.Errorf("b.Stats() = %+v; want 1 refused", s)
	}
	if s := a.Stats(); s.OpenConns != 0 {
		t.Errorf("a.Stats().OpenConns = %d after a refused dial; want 0", s.OpenConns)
	}
}

func TestClosedGroupRefused(t *testing.T) {
	a, b := listen(t), listen(t)
	la, lb := group(t, a, 3), group(t, b, 3)
	c, err := la.Dial(addr(b), time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	// One connection queued but never accepted, one accepted.
	queued, err := la.Dial(addr(b), time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	s, err := lb.Accept()
	if err != nil {
		t.Fatal(err)
	}
	_ = s
	if err := lb.Close(); err != nil {
		t.Fatalf("Layer.Close: %v", err)
	}
	lb.Close() // twice is fine

	if _, err := lb.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v; want net.ErrClosed", err)
	}
	for name, conn := range map[string]net.Conn{"accepted": c, "queued": queued} {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("%s conn after the remote group closed: read %d, %v; want EOF", name, n, err)
		}
	}
	if _, err := la.Dial(addr(b), time.Second); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("Dial to a closed group: %v; want ErrUnknownGroup", err)
	}
	if _, err := lb.Dial(addr(a), time.Second); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial from a closed layer: %v; want net.ErrClosed", err)
	}

	// The id can be opened again.
	lb2 := group(t, b, 3)
	if _, err := la.Dial(addr(b), time.Second); err != nil {
		t.Fatalf("Dial to the reopened group: %v", err)
	}
	if _, err := lb2.Accept(); err != nil {
		t.Fatalf("Accept on the reopened group: %v", err)
	}
}

func TestSilentClientDoesNotBlockOthers(t *testing.T) {
	const timeout = 300 * time.Millisecond
	a, b := listen(t), listen(t, WithHandshakeTimeout(timeout))
	la, lb := group(t, a, 1), group(t, b, 1)

	silent := dialRaw(t, b)
	partial := dialRaw(t, b)
	if _, err := partial.Write(appendHeader(nil, 1)[:5]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two pending handshakes", time.Second, func() bool { return b.Stats().PendingHandshakes == 2 })

	start := time.Now()
	c, err := la.Dial(addr(b), 5*time.Second)
	if err != nil {
		t.Fatalf("Dial while silent peers hold handshakes: %v", err)
	}
	defer c.Close()
	if d := time.Since(start); d > timeout/2 {
		t.Errorf("Dial took %v behind silent peers; want well under the %v handshake timeout", d, timeout)
	}
	if _, err := lb.Accept(); err != nil {
		t.Fatal(err)
	}
	for name, conn := range map[string]net.Conn{"silent": silent, "partial": partial} {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("%s peer: read %d, %v; want EOF once the handshake timed out", name, n, err)
		}
	}
	if d := time.Since(start); d < timeout/2 {
		t.Errorf("silent peers dropped after %v; want about the %v handshake timeout", d, timeout)
	}
	waitFor(t, "bad handshakes counted", time.Second, func() bool { return b.Stats().BadHandshakes == 2 })
}

// TestPendingHandshakesBounded: once every handshake slot is taken, the next
// connection waits for a slot (bounded by the handshake timeout of the peers
// that hold them) instead of starting another goroutine.
func TestPendingHandshakesBounded(t *testing.T) {
	const timeout = 300 * time.Millisecond
	a, b := listen(t), listen(t, WithHandshakeTimeout(timeout), WithMaxPendingHandshakes(2))
	la, lb := group(t, a, 1), group(t, b, 1)
	dialRaw(t, b)
	dialRaw(t, b)
	dialRaw(t, b) // waits in the backlog
	waitFor(t, "two pending handshakes", time.Second, func() bool { return b.Stats().PendingHandshakes == 2 })
	start := time.Now()
	c, err := la.Dial(addr(b), 5*time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if _, err := lb.Accept(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < timeout/2 || d > 10*timeout {
		t.Errorf("Dial behind full handshake slots took %v; want about the %v handshake timeout", d, timeout)
	}
	if p := b.Stats().PendingHandshakes; p > 2 {
		t.Errorf("PendingHandshakes = %d; want at most 2", p)
	}
}

func TestBadMagicClosedWithoutReply(t *testing.T) {
	b := listen(t)
	group(t, b, 1)
	c := dialRaw(t, b)
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("stray client: read %d, %v; want the connection closed without a reply", n, err)
	}
	waitFor(t, "bad handshake counted", time.Second, func() bool { return b.Stats().BadHandshakes == 1 })
}

func TestUnsupportedVersionRefused(t *testing.T) {
	b := listen(t)
	group(t, b, 1)
	c := dialRaw(t, b)
	h := appendHeader(nil, 1)
	h[4] = version + 1
	if _, err := c.Write(h); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var reply [1]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		t.Fatalf("read reply: %v", err)
	}
	if err := replyError(reply[0]); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("reply to version %d = %v; want ErrUnsupportedVersion", version+1, err)
	}
}

func TestFullAcceptQueueRefusedBusy(t *testing.T) {
	const timeout = 200 * time.Millisecond
	a, b := listen(t), listen(t, WithAcceptQueueLen(1), WithHandshakeTimeout(timeout))
	la := group(t, a, 1)
	group(t, b, 1) // never accepts
	c, err := la.Dial(addr(b), 5*time.Second)
	if err != nil {
		t.Fatalf("first Dial (queued): %v", err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := la.Dial(addr(b), 5*time.Second); !errors.Is(err, ErrBusy) {
		t.Fatalf("Dial to a full accept queue: %v; want ErrBusy", err)
	}
	if d := time.Since(start); d < timeout/2 || d > 10*timeout {
		t.Errorf("busy refusal took %v; want about the %v handshake timeout", d, timeout)
	}
}

func TestMuxLifecycle(t *testing.T) {
	base := runtime.NumGoroutine()
	if _, err := Listen(":0", quiet); err == nil {
		t.Error("Listen(:0) without an advertise address succeeded; want an error")
	}
	m, err := Listen(":0", quiet, WithAdvertiseAddr("127.0.0.1:7777"))
	if err != nil {
		t.Fatalf("Listen with an advertise address: %v", err)
	}
	if got := m.Addr().String(); got != "127.0.0.1:7777" {
		t.Errorf("Addr() = %s; want the advertise address", got)
	}
	l := group(t, m, 1)
	if _, err := m.Group(1); !errors.Is(err, ErrGroupExists) {
		t.Errorf("Group(1) twice: %v; want ErrGroupExists", err)
	}
	accepted := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		accepted <- err
	}()
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept blocked across Close returned %v; want net.ErrClosed", err)
	}
	if _, err := m.Group(2); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Group after Close: %v; want net.ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Layer.Close after Mux.Close: %v", err)
	}
	checkGoroutines(t, base)
}

func TestMuxCloseClosesConnections(t *testing.T) {
	base := runtime.NumGoroutine()
	a, b := listen(t), listen(t)
	la, lb := group(t, a, 1), group(t, b, 1)
	out, err := la.Dial(addr(b), time.Second) // a → b
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Accept(); err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Dial(addr(a), time.Second); err != nil { // b → a
		t.Fatal(err)
	}
	in, err := la.Accept()
	if err != nil {
		t.Fatal(err)
	}
	silent := dialRaw(t, b) // a handshake in progress
	waitFor(t, "a pending handshake", time.Second, func() bool { return b.Stats().PendingHandshakes == 1 })

	b.Close()
	for name, conn := range map[string]net.Conn{"outbound": out, "inbound": in, "silent": silent} {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("%s conn to a closed mux: read %d, %v; want EOF", name, n, err)
		}
	}
	if s := b.Stats(); s.OpenConns != 0 || s.PendingHandshakes != 0 || s.Groups != 0 {
		t.Errorf("b.Stats() after Close = %+v; want no conns, handshakes or groups", s)
	}
	if _, err := la.Dial(addr(b), time.Second); err == nil {
		t.Error("Dial to a closed mux succeeded")
	}
	out.Close()
	in.Close()
	silent.Close()
	a.Close()
	checkGoroutines(t, base)
}

// TestHammer races Group, Dial, Accept and Close on a few ids (run with
// -race). Every call must return; counters must balance at the end.
func TestHammer(t *testing.T) {
	base := runtime.NumGoroutine()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	const (
		workers = 8
		rounds  = 60
		ids     = 4
	)
	a, b := listen(t, WithHandshakeTimeout(time.Second)), listen(t, WithHandshakeTimeout(time.Second))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for range rounds {
				id := rng.Uint64N(ids)
				from, to := a, b
				if rng.IntN(2) == 0 {
					from, to = b, a
				}
				l, err := from.Group(id)
				if err != nil {
					if !errors.Is(err, ErrGroupExists) {
						t.Errorf("Group(%d): %v", id, err)
					}
					continue
				}
				remote, err := to.Group(id)
				if err == nil {
					go func() { // drain, as raft's listen loop would
						for {
							c, err := remote.Accept()
							if err != nil {
								return
							}
							c.Close()
						}
					}()
				}
				for range 1 + rng.IntN(3) {
					c, err := l.Dial(raft.ServerAddress(to.Addr().String()), 5*time.Second)
					if err == nil {
						c.Close()
					} else if !errors.Is(err, ErrUnknownGroup) && !errors.Is(err, net.ErrClosed) && !isConnClosedByPeer(err) {
						t.Errorf("Dial group %d: %v", id, err)
					}
				}
				l.Close()
				if remote != nil {
					remote.Close()
				}
			}
		}()
	}
	wg.Wait()
	a.Close()
	b.Close()
	for _, m := range []*Mux{a, b} {
		if s := m.Stats(); s.OpenConns != 0 || s.Groups != 0 || s.PendingHandshakes != 0 {
			t.Errorf("Stats() after Close = %+v; want nothing open", s)
		}
	}
	checkGoroutines(t, base)
}

// isConnClosedByPeer reports a dial whose handshake met a group closing
// under it (the refusal raced with the close of the connection).
func isConnClosedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "connection reset")
}

// dialRaw opens a plain TCP connection to m, closed with the test.
func dialRaw(t testing.TB, m *Mux) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", m.Addr().String(), time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", m.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
