package sparkplug

import (
	"testing"

	"github.com/weftiot/weft/internal/faultproxy"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
	spb "github.com/weftiot/weft/wire/sparkplug"
)

// TestEdgeNodeWill: when the connection dies, the broker publishes the
// node's will, an NDEATH with the bdSeq of the NBIRTH of that connection;
// the node reconnects with the next bdSeq and is born again.
func TestEdgeNodeWill(t *testing.T) {
	mq := testservers.Mosquitto(t)
	rec := record(t, mq.URL)
	dir := t.TempDir()
	sp := openSpool(t, dir)
	// The link, to be cut at once: the broker then sees the client vanish
	// without DISCONNECT and publishes its will.
	proxy := faultproxy.Start(t, mq.Addr)
	devs := &devices{list: []Device{{ID: "d", Points: []Point{{Name: "p"}}}}}
	startNode(t, "tcp://"+proxy.Addr(), sp, dir, "", devs)
	birth := rec.wait(0, 1, spb.NBIRTH)[0]
	bd := bdSeqOf(t, birth.p)

	proxy.Drop()
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
