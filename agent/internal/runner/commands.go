package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/wire"
)

// CmdRebirth asks the agent to publish its status again.
const CmdRebirth = "rebirth"

type cmdMsg struct {
	topic   string
	payload []byte
}

// onCommand is called by the forwarder for every message on the agent's
// command topics. It queues the command; the command loop runs them one at
// a time.
func (a *Agent) onCommand(topic string, payload []byte) {
	select {
	case a.cmdQueue <- cmdMsg{topic, payload}:
	default:
		a.cmdErrors.Add(1)
		a.log.Warn("command refused: too many queued", "topic", topic)
		if id := commandID(payload); id != "" {
			a.reply(wire.Reply{ID: id, Error: "agent busy: too many commands queued; retry later"})
		}
	}
}

func (a *Agent) commandLoop(ctx context.Context) {
	// A trial carried over from before a restart is watched first, as a
	// config command's trial is: commands wait for it.
	if a.resumed != nil {
		a.watchBroker(ctx, a.resumed)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-a.cmdQueue:
			if !a.waitConnected(ctx) {
				return
			}
			a.handle(ctx, m)
		}
	}
}

// waitConnected holds a command until the agent's session is up. A command
// the broker queued while the agent was away arrives the moment the broker
// accepts the connection, before the forwarder has published the online
// status and counts itself connected; carried out at once, its reply could
// not be published. It returns false when ctx ends first.
func (a *Agent) waitConnected(ctx context.Context) bool {
	if a.forwarder().Connected() {
		return true
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			if a.forwarder().Connected() {
				return true
			}
		}
	}
}

// commandID digs the id out of a command that failed to decode, so that
// the error can still be answered.
func commandID(payload []byte) string {
	var c struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(payload, &c) != nil || wire.CheckLevel(c.ID) != nil {
		return ""
	}
	return c.ID
}

func (a *Agent) handle(ctx context.Context, m cmdMsg) {
	a.commands.Add(1)
	a.mu.Lock()
	prefix, site, id := a.cfg.MQTT.TopicPrefix, a.cfg.Agent.Site, a.cfg.Agent.ID
	a.mu.Unlock()
	fail := func(cmdID, format string, args ...any) {
		a.cmdErrors.Add(1)
		msg := fmt.Sprintf(format, args...)
		a.log.Warn("command refused", "topic", m.topic, "id", cmdID, "err", msg)
		if cmdID != "" {
			a.reply(wire.Reply{ID: cmdID, Error: msg})
		}
	}
	tSite, tAgent, kind, name, err := wire.ParseTopic(prefix, m.topic)
	if err != nil || tSite != site || tAgent != id || kind != wire.KindCmd {
		fail(commandID(m.payload), "command on %q: not this agent's command topic", m.topic)
		return
	}
	var cmd wire.Command
	if err := wire.DecodeCommand(m.payload, &cmd); err != nil {
		fail(commandID(m.payload), "%v", err)
		return
	}
	if cmd.Name != name {
		fail(cmd.ID, "command %q arrived on the topic of %q", cmd.Name, name)
		return
	}
	switch cmd.Name {
	case wire.CmdStatus:
		h := a.Health()
		if err := a.forwarder().PublishStatus(); err != nil {
			a.log.Debug("status not published", "err", err)
		}
		a.publishHealth()
		a.mu.Lock()
		hash := a.hash
		a.mu.Unlock()
		a.reply(wire.Reply{ID: cmd.ID, OK: true, ConfigHash: hash, Health: &h})
	case CmdRebirth:
		if err := a.forwarder().PublishStatus(); err != nil {
			fail(cmd.ID, "status not published: %v", err)
			return
		}
		a.mu.Lock()
		hash := a.hash
		a.mu.Unlock()
		a.reply(wire.Reply{ID: cmd.ID, OK: true, ConfigHash: hash})
	case wire.CmdConfig:
		a.configCommand(ctx, cmd)
	default:
		fail(cmd.ID, "unknown command %q; this agent knows %s, %s and %s", cmd.Name, wire.CmdConfig, wire.CmdStatus, CmdRebirth)
	}
}

// reply publishes a reply on the agent's reply topic (QoS 1).
func (a *Agent) reply(r wire.Reply) {
	r.V = wire.Version
	r.TS = time.Now().UnixMilli()
	b, err := json.Marshal(r)
	if err != nil {
		a.log.Error("reply: encoding", "err", err)
		return
	}
	a.mu.Lock()
	topic := wire.Topics{Prefix: a.cfg.MQTT.TopicPrefix}.Reply(a.cfg.Agent.Site, a.cfg.Agent.ID, r.ID)
	a.mu.Unlock()
	if err := a.forwarder().Publish(topic, 1, false, b, 10*time.Second); err != nil {
		a.log.Warn("reply not published", "id", r.ID, "err", err)
	}
}

// configCommand validates, saves and applies a config sent by the platform,
// and watches the broker connection with it.
func (a *Agent) configCommand(ctx context.Context, cmd wire.Command) {
	raw := []byte(cmd.Config)
	cfg, err := config.ParseAgent(a.opts.ConfigPath, raw)
	if err != nil {
		a.cmdErrors.Add(1)
		r := wire.Reply{ID: cmd.ID, Error: "config rejected: nothing changed"}
		if es := config.AsErrors(err); len(es) > 0 {
			for _, e := range es {
				r.Errors = append(r.Errors, e.Error())
			}
		} else {
			r.Errors = []string{err.Error()}
		}
		a.log.Warn("remote config rejected", "id", cmd.ID, "problems", len(r.Errors))
		a.reply(r)
		return
	}
	if err := a.canApply(cfg); err != nil {
		a.cmdErrors.Add(1)
		a.reply(wire.Reply{ID: cmd.ID, Error: "config rejected: nothing changed", Errors: []string{err.Error()}})
		return
	}
	a.mu.Lock()
	prevRaw, prevHash, old := a.raw, a.hash, a.cfg
	a.mu.Unlock()
	newHash := config.Hash(raw)
	changed := brokerChanged(old, cfg)
	if err := a.saveRemoteConfig(cmd.ID, raw, prevRaw, prevHash, changed); err != nil {
		a.cmdErrors.Add(1)
		a.reply(wire.Reply{ID: cmd.ID, Error: fmt.Sprintf("config not saved, nothing changed: %v", err)})
		return
	}
	a.log.Info("remote config saved; applying", "id", cmd.ID, "hash", newHash, "previous", prevHash)
	// Reply before a broker change drops this connection.
	if changed {
		a.reply(wire.Reply{ID: cmd.ID, OK: true, ConfigHash: newHash})
	}
	since := time.Now()
	gen := a.apply(cfg, raw)
	if !changed {
		a.reply(wire.Reply{ID: cmd.ID, OK: true, ConfigHash: newHash})
		return
	}
	a.watchBroker(ctx, &trialWatch{id: cmd.ID, gen: gen, since: since, window: a.opts.RollbackAfter,
		old: old, prevRaw: prevRaw, prevHash: prevHash, newHash: newHash})
}

// saveRemoteConfig keeps the running config as FILE.prev and writes raw
// to the config file. With a broker change, the trial is recorded between
// the two (FILE.trial): a restart at any point then finds either the old
// file (and drops the stale trial) or the new one with its trial.
func (a *Agent) saveRemoteConfig(id string, raw, prevRaw []byte, prevHash string, trialToo bool) error {
	path := a.opts.ConfigPath
	if err := writeAtomic(path+".prev", prevRaw); err != nil {
		return fmt.Errorf("keeping the previous config: %w", err)
	}
	if trialToo {
		prev, err := filepath.Abs(path + ".prev") // the next start may run from elsewhere
		if err != nil {
			return fmt.Errorf("recording the trial: %w", err)
		}
		t := trial{Hash: config.Hash(raw), Started: time.Now().UTC(), RollbackAfter: a.opts.RollbackAfter.String(),
			Prev: prev, PrevHash: prevHash, Command: id}
		if err := writeTrial(path, t); err != nil {
			return fmt.Errorf("recording the trial: %w", err)
		}
	} else {
		a.endTrial("a config with the same broker settings replaced it")
	}
	if err := writeAtomic(path, raw); err != nil {
		if trialToo {
			a.endTrial("the config was not saved")
		}
		return err
	}
	return nil
}

// trialWatch is a config on trial: it must reach the broker within window
// from since, or old comes back.
type trialWatch struct {
	id                string // the config command's id ("" if unknown)
	gen               uint64 // the applyGen of the config on trial
	since             time.Time
	window            time.Duration
	old               *config.Agent
	prevRaw           []byte
	prevHash, newHash string
	resumed           bool // carried on after a restart
}

// watchBroker restores the previous config when the new one cannot reach
// the broker within the trial's window. The trial file is removed when the
// trial ends either way, or when another config replaced the one on trial;
// it stays when ctx ends (the next start carries the trial on).
func (a *Agent) watchBroker(ctx context.Context, w *trialWatch) {
	deadline := time.NewTimer(time.Until(w.since.Add(w.window)))
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			a.mu.Lock()
			cur, hash := a.applyGen, a.hash
			a.mu.Unlock()
			if cur != w.gen {
				if hash == w.newHash {
					w.gen = cur // the same file loaded again (SIGHUP): still on trial
				} else {
					a.endTrial("another config replaced the one on trial")
					return
				}
			}
			if f := a.forwarder(); f.Connected() && !f.ConnectedAt().Before(w.since) {
				a.log.Info("new config reached the broker", "hash", w.newHash)
				a.endTrial("passed: the config reached the broker")
				return
			}
		case <-deadline.C:
			a.rollback(ctx, w)
			return
		}
	}
}

func (a *Agent) rollback(ctx context.Context, w *trialWatch) {
	note := fmt.Sprintf("config %s could not reach the broker within %v; rolled back to %s", w.newHash, w.window, w.prevHash)
	if w.resumed {
		note = fmt.Sprintf("config %s could not reach the broker within %v of the agent's restart during its trial; rolled back to %s",
			w.newHash, w.window, w.prevHash)
	}
	a.log.Error("rolling back the config: the broker is unreachable with it", "hash", w.newHash, "previous", w.prevHash,
		"after", w.window, "after_restart", w.resumed)
	if err := writeConfig(a.opts.ConfigPath, w.prevRaw, nil); err != nil {
		// The trial file stays: the next start finds the config on trial
		// still in the file and tries again.
		a.log.Error("rollback: restoring the previous file", "err", err)
	} else {
		a.endTrial("rolled back")
	}
	a.rollbacks.Add(1)
	a.mu.Lock()
	a.rolled = note
	a.mu.Unlock()
	a.apply(w.old, w.prevRaw)
	if w.id == "" {
		return
	}
	// Tell the platform once the old settings connect again.
	go func() {
		for i := 0; i < 600 && ctx.Err() == nil; i++ {
			if a.forwarder().Connected() {
				a.reply(wire.Reply{ID: w.id, Error: note, ConfigHash: w.prevHash})
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
}

// writeConfig replaces path by data atomically (temporary file, fsync,
// rename, fsync of the directory). With prev, the replaced content is kept
// first as path.prev.
func writeConfig(path string, data, prev []byte) error {
	if prev != nil {
		if err := writeAtomic(path+".prev", prev); err != nil {
			return fmt.Errorf("keeping the previous config: %w", err)
		}
	}
	return writeAtomic(path, data)
}

func writeAtomic(path string, data []byte) error {
	mode := os.FileMode(0o640)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
