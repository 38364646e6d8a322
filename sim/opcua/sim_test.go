package opcua

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
)

func read(t *testing.T, endpoint string, nodes ...string) []*ua.DataValue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := opcua.NewClient(endpoint, opcua.AutoReconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect %s: %v", endpoint, err)
	}
	defer c.Close(ctx)
	req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnBoth}
	for _, n := range nodes {
		req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: ua.MustParseNodeID(n), AttributeID: ua.AttributeIDValue})
	}
	res, err := c.Read(ctx, req)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return res.Results
}

// TestReadRestart reads values, restarts the server on the same port and
// reads again: the simulator's own recovery contract.
func TestReadRestart(t *testing.T) {
	s, err := Start(Options{Addr: "127.0.0.1:0", UpdateInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	got := read(t, s.Endpoint(), "ns=1;s=Types.Double", "ns=1;s=Types.StatusBad", "ns=1;s=Nope")
	if v, ok := got[0].Value.Value().(float64); !ok || v != math.Pi {
		t.Errorf("Types.Double = %v, want pi", got[0].Value.Value())
	}
	if got[0].SourceTimestamp.IsZero() {
		t.Error("Types.Double has no source timestamp")
	}
	if got[1].Status != ua.StatusBadSensorFailure {
		t.Errorf("Types.StatusBad status = %v", got[1].Status)
	}
	if got[2].Status != ua.StatusBadNodeIDUnknown {
		t.Errorf("unknown node status = %v", got[2].Status)
	}
	before := read(t, s.Endpoint(), "ns=1;s=Types.Counter")[0].Value.Value().(uint32)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	after := read(t, s.Endpoint(), "ns=1;s=Types.Counter")[0].Value.Value().(uint32)
	if after <= before {
		t.Errorf("counter did not advance across restart: %d then %d", before, after)
	}
}

func TestMaxNodesPerRead(t *testing.T) {
	s, err := Start(Options{Addr: "127.0.0.1:0", MaxNodesPerRead: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _ := opcua.NewClient(s.Endpoint(), opcua.AutoReconnect(false))
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	req := &ua.ReadRequest{}
	for range 3 {
		req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: ua.MustParseNodeID("ns=1;s=Types.Double"), AttributeID: ua.AttributeIDValue})
	}
	if _, err := c.Read(ctx, req); err != ua.StatusBadTooManyOperations {
		t.Errorf("read of 3 with limit 2: err = %v, want BadTooManyOperations", err)
	}
}

func TestUnknownProfile(t *testing.T) {
	if _, err := Start(Options{Addr: "127.0.0.1:0", Profile: "knitter"}); err == nil {
		t.Error("unknown profile accepted")
	}
}
