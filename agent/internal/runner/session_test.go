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
// The queued command reaches the agent the moment the broker accepts the
// connection, before the forwarder has published the online status and
// counts itself connected; the command loop holds it until then (found by
// the issue 6/10 audit: the reply was dropped in 5 of 5 runs).
func TestCommandQueuedWhileAwayIsCarriedOut(t *testing.T) {
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
