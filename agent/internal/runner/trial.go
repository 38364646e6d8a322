package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/wire"
)

// A trial is a remote config on probation: applied, but not yet proven to
// reach the broker. It is kept in FILE.trial beside the config file, so
// that a restart (SIGKILL, power cut, SIGTERM) during the trial does not
// leave the agent running a config that may never reach the broker: the
// next start carries on with the trial and rolls back as the first run
// would have.
type trial struct {
	V int `json:"v"`
	// Hash is the config.Hash of the config on trial.
	Hash string `json:"hash"`
	// Started is when the remote config was applied (for people and
	// logs: the window after a restart counts from that start, see
	// resumeTrial).
	Started time.Time `json:"started"`
	// RollbackAfter is the window the config was given.
	RollbackAfter string `json:"rollback_after"`
	// Prev is the file holding the config to go back to, PrevHash its
	// config.Hash.
	Prev     string `json:"prev"`
	PrevHash string `json:"prev_hash"`
	// Command is the id of the config command, so that the rollback is
	// still answered on its reply topic after a restart.
	Command string `json:"command,omitempty"`
}

const trialVersion = 1

func trialPath(configPath string) string { return configPath + ".trial" }

// window returns RollbackAfter, checked by decodeTrial.
func (t *trial) window() time.Duration {
	d, _ := time.ParseDuration(t.RollbackAfter)
	return d
}

// decodeTrial reads a trial file's content; whatever is wrong with it is
// an error naming the field.
func decodeTrial(b []byte) (*trial, error) {
	var t trial
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("not a trial record: %w", err)
	}
	var errs []error
	if t.V != trialVersion {
		errs = append(errs, fmt.Errorf("v: %d, want %d", t.V, trialVersion))
	}
	if t.Hash == "" {
		errs = append(errs, errors.New("hash: missing"))
	}
	if t.PrevHash == "" {
		errs = append(errs, errors.New("prev_hash: missing"))
	}
	if t.Prev == "" {
		errs = append(errs, errors.New("prev: missing"))
	}
	if t.Started.IsZero() {
		errs = append(errs, errors.New("started: missing"))
	}
	if d, err := time.ParseDuration(t.RollbackAfter); err != nil || d <= 0 {
		errs = append(errs, fmt.Errorf("rollback_after: %q is not a positive duration", t.RollbackAfter))
	}
	if t.Command != "" && wire.CheckLevel(t.Command) != nil {
		errs = append(errs, fmt.Errorf("command: %q is not a command id", t.Command))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &t, nil
}

// writeTrial records t beside the config file, atomically.
func writeTrial(configPath string, t trial) error {
	t.V = trialVersion
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(trialPath(configPath), append(b, '\n'))
}

// endTrial removes the trial file; why says why, for the log.
func (a *Agent) endTrial(why string) {
	p := trialPath(a.opts.ConfigPath)
	err := os.Remove(p)
	switch {
	case err == nil:
		a.log.Info("config trial ended", "why", why, "file", p)
	case !errors.Is(err, os.ErrNotExist):
		a.log.Error("config trial: removing the trial file", "file", p, "err", err)
	}
}

// resumeTrial looks, at start, for a trial left by an earlier run. When
// the running file is the config on trial and the previous config can be
// restored, it returns the watch that carries the trial on. Anything else
// (no trial, a file edited by hand since, a damaged record, a previous
// config gone) returns nil; all but the first are logged and the trial
// file removed.
//
// The window counts from this start, not from the trial's first start: a
// box that was off (or whose clock was not yet set at boot) must still try
// the new config for its whole rollback_after, since the power cut itself
// may have taken the network down with it. A restart therefore lengthens a
// trial; it never rolls back a config that was not given its chance.
func (a *Agent) resumeTrial(raw []byte) *trialWatch {
	p := trialPath(a.opts.ConfigPath)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	drop := func(msg string, args ...any) {
		a.log.Error(msg, append(args, "file", p)...)
		a.endTrial("dropped at start")
	}
	if err != nil {
		drop("config trial file unreadable; the trial is dropped and the config file runs", "err", err)
		return nil
	}
	t, err := decodeTrial(b)
	if err != nil {
		drop("config trial file damaged; the trial is dropped and the config file runs", "err", err)
		return nil
	}
	hash := config.Hash(raw)
	if t.Hash != hash {
		a.log.Warn("config file changed since its trial started (edited by hand?); the trial is dropped and the file runs",
			"file", p, "on_trial", t.Hash, "running", hash)
		a.endTrial("config file changed")
		return nil
	}
	prevRaw, err := os.ReadFile(t.Prev)
	if err != nil {
		drop("config trial: the previous config is gone; no rollback is possible and the config on trial runs", "prev", t.Prev, "err", err)
		return nil
	}
	if h := config.Hash(prevRaw); h != t.PrevHash {
		drop("config trial: the previous config file changed since the trial started; no rollback is possible and the config on trial runs",
			"prev", t.Prev, "want", t.PrevHash, "have", h)
		return nil
	}
	old, err := config.ParseAgent(a.opts.ConfigPath, prevRaw)
	if err == nil {
		err = a.canApply(old)
	}
	if err != nil {
		drop("config trial: the previous config cannot be applied; no rollback is possible and the config on trial runs", "prev", t.Prev, "err", err)
		return nil
	}
	w := &trialWatch{id: t.Command, since: a.started, window: t.window(), old: old, prevRaw: prevRaw,
		prevHash: t.PrevHash, newHash: hash, resumed: true}
	a.log.Warn("config on trial after a restart: it must reach the broker in its window or the previous one comes back",
		"hash", hash, "previous", t.PrevHash, "trial_started", t.Started.Format(time.RFC3339), "window", w.window)
	return w
}
