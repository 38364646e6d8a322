package runner

import (
	"fmt"

	"github.com/weftiot/weft/internal/sdnotify"
	"github.com/weftiot/weft/wire"
)

// systemd's side of the agent (Type=notify, WatchdogSec=; docs/deploy.md).
// Outside systemd every sdnotify call does nothing.

// notifyReady tells systemd that the agent runs: the spool is open and
// collection and the forwarder have started.
func (a *Agent) notifyReady() {
	if err := sdnotify.Ready(); err != nil {
		a.log.Warn("systemd: READY=1 not sent; with Type=notify systemd will time the start out", "err", err)
	}
}

// notifyStopping tells systemd that the agent is shutting down.
func (a *Agent) notifyStopping() {
	if err := sdnotify.Stopping(); err != nil {
		a.log.Debug("systemd: STOPPING=1 not sent", "err", err)
	}
}

// watchdog is called from the health loop at half the unit's WatchdogSec=.
// It first builds the health message, which takes the agent's lock, the
// spool's, the forwarder's and every device's: a deadlock anywhere there
// (or a health loop that no longer runs) stops the pings, and systemd
// restarts the agent. Then it pings and sets the status line
// `systemctl status` shows.
func (a *Agent) watchdog() {
	h := a.Health()
	if err := sdnotify.Watchdog(); err != nil {
		a.log.Warn("systemd: WATCHDOG=1 not sent; systemd will restart the agent", "err", err)
		return
	}
	if err := sdnotify.Status(statusLine(h)); err != nil {
		a.log.Debug("systemd: STATUS not sent", "err", err)
	}
}

// statusLine sums health up in one line, e.g. "devices 9/10 ok; backlog 3
// batches (120 samples); broker connected".
func statusLine(h wire.Health) string {
	ok := 0
	for _, d := range h.Devices {
		if d.State == wire.DeviceOK {
			ok++
		}
	}
	broker := "broker disconnected"
	if h.Forwarder.Connected {
		broker = "broker connected"
	}
	return fmt.Sprintf("devices %d/%d ok; backlog %d batches (%d samples); %s",
		ok, len(h.Devices), h.Spool.Batches, h.Spool.Samples, broker)
}
