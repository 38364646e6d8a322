package sparkplug

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
	spb "github.com/weftiot/weft/wire/sparkplug"
)

// cutter is a TCP forwarder whose connections can be cut at once: the
// broker then sees the client vanish without DISCONNECT and publishes its
// will. (A real network fault the broker and paho cannot be made to show.)
type cutter struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutter(t *testing.T, target string) *cutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln}
	t.Cleanup(func() { ln.Close(); c.cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return c
}

func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.conns {
		n.Close()
	}
	c.conns = nil
}

// TestEdgeNodeWill: when the connection dies, the broker publishes the
// node's will, an NDEATH with the bdSeq of the NBIRTH of that connection;
// the node reconnects with the next bdSeq and is born again.
func TestEdgeNodeWill(t *testing.T) {
	mq := testservers.Mosquitto(t)
	rec := record(t, mq.URL)
	dir := t.TempDir()
	sp := openSpool(t, dir)
	proxy := newCutter(t, strings.TrimPrefix(mq.URL, "tcp://"))
	devs := &devices{list: []Device{{ID: "d", Points: []Point{{Name: "p"}}}}}
	startNode(t, "tcp://"+proxy.ln.Addr().String(), sp, dir, "", devs)
	birth := rec.wait(0, 1, spb.NBIRTH)[0]
	bd := bdSeqOf(t, birth.p)

	proxy.cut()
	death := rec.wait(0, 1, spb.NDEATH)[0]
	if got := bdSeqOf(t, death.p); got != bd {
		t.Fatalf("will NDEATH bdSeq %d, want the NBIRTH's %d", got, bd)
	}
	again := rec.wait(0, 2, spb.NBIRTH)[1]
	if got := bdSeqOf(t, again.p); got != (bd+1)%256 {
		t.Fatalf("bdSeq after reconnect %d, want %d", got, (bd+1)%256)
	}
	appendBatch(t, sp, wire.Sample{Device: "d", Point: "p", Value: wire.IntValue(1), TS: 1})
	rec.wait(0, 1, spb.DDATA)
	checkSeq(t, rec.wait(0, 0))
}
