package runner

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// Issue 6's persistent session: the broker keeps the agent's command
// subscription while the agent is away and queues the commands sent
// meanwhile; the agent carries them out when it is back, and replies.
//
// KNOWN BUG, found by the issue 6/10 audit (5 of 5 runs): the queued
// command reaches the command loop the moment the broker accepts the
// connection, before the forwarder's session has published the online
// status and marked itself connected, so Forwarder.Publish returns
// ErrNotConnected: the command is carried out but its reply (and, for
// status, the status and health it publishes) is dropped ("reply not
// published ... not connected to the broker" at warn). Remove the Skip
// with the fix.
func TestCommandQueuedWhileAwayIsCarriedOut(t *testing.T) {
	if os.Getenv("WEFT_KNOWN_BUGS") == "" {
		t.Skip("known bug: the reply to a command queued while the agent was away is dropped (see the comment); WEFT_KNOWN_BUGS=1 runs it")
	}
	sim := startSim(t, 1)
	broker := testservers.Mosquitto(t)
	rcv := listen(t, broker.URL, "session-listener")
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	os.WriteFile(path, []byte(agentConfig(filepath.Join(dir, "data"), broker.URL, sim.Addr(), 1, "")), 0o644)

	a, stop := startAgent(t, testOptions(path))
	waitUntil(t, "connected", 10*time.Second, func() bool { return a.forwarder().Connected() })
	stop()
	waitUntil(t, "offline", 10*time.Second, func() bool { return rcv.lastStatus().State == wire.Offline })

	rcv.command(t, wire.Command{ID: "away1", Name: wire.CmdStatus})
	time.Sleep(300 * time.Millisecond)
	if rcv.reply("away1", 1) != nil {
		t.Fatal("a reply came while the agent was stopped")
	}

	startAgent(t, testOptions(path))
	waitUntil(t, "the reply to the command sent while the agent was away", 15*time.Second, func() bool { return rcv.reply("away1", 1) != nil })
	if r := rcv.reply("away1", 1)[0]; !r.OK || r.Health == nil {
		t.Errorf("reply %+v: want ok with the health", r)
	}
}
