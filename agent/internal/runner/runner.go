// Package runner is `weft-agent run`: it ties the config, the drivers, the
// pipeline, the spool and the forwarder together, publishes health, serves
// the local HTTP endpoint and carries out remote commands.
//
// Shutdown order (when ctx ends): sources stop first, the pipeline drains
// into the spool, the forwarder publishes what it can within its flush
// deadline, and the spool closes last.
package runner

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftiot/weft/agent/internal/collect"
	"github.com/weftiot/weft/agent/internal/forward"
	"github.com/weftiot/weft/agent/internal/spool"
	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/internal/mqttconn"
	"github.com/weftiot/weft/internal/profiling"
	"github.com/weftiot/weft/internal/version"
	"github.com/weftiot/weft/wire"
)

// Options configure Run. Only ConfigPath is required.
type Options struct {
	ConfigPath string
	Logger     *slog.Logger
	// Reload receives a value when the config file is to be read again
	// (SIGHUP). An invalid file is logged and the running config kept.
	Reload <-chan struct{}
	// RollbackAfter is how long a config applied by a remote command may
	// go without a broker connection before the previous one is restored
	// (0: the config's agent.rollback_after, default 2m).
	RollbackAfter time.Duration
	// HTTPListen, when set, overrides the config's metrics.listen.
	HTTPListen string
	// DrainTimeout bounds the pipeline's last appends at shutdown (10s).
	DrainTimeout time.Duration
	// FlushTimeout is how long the forwarder keeps publishing the backlog
	// at shutdown (default 5s).
	FlushTimeout time.Duration

	// Collect and the Broker backoff tune the schedule; the zero values are
	// the production settings. Tests shorten them.
	Collect                            collect.Options
	BrokerBackoffMin, BrokerBackoffMax time.Duration
	// Started, when set, is called once everything runs (tests use it).
	Started func(*Agent)
}

// Agent is a running agent. Its methods are safe for concurrent use.
type Agent struct {
	opts    Options
	log     *slog.Logger
	started time.Time
	sp      *spool.Spool

	mu        sync.Mutex
	cfg       *config.Agent
	raw       []byte
	hash      string
	coll      *collection
	fwd       link // *forward.Forwarder, or the Sparkplug edge node (sparkplug.go)
	fwdStop   context.CancelFunc
	fwdDone   chan struct{}
	rolled    string // the last rollback, for health and logs
	applyGen  uint64 // counts applied configs (rollback watches one)
	pipeBase  pipeStats
	collCtx   context.Context
	healthSet chan struct{}
	httpAddr  string

	commands  atomic.Uint64
	cmdErrors atomic.Uint64
	cmdQueue  chan cmdMsg
	rollbacks atomic.Uint64
	resumed   *trialWatch // a config trial carried over from before a restart (trial.go)
	rate      publishRate // the publish rate in health (health.go)
}

// Run runs the agent of the config file at opts.ConfigPath until ctx ends.
// A config file with problems is returned as config.Errors before anything
// starts.
func Run(ctx context.Context, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	raw, err := os.ReadFile(opts.ConfigPath)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	cfg, err := config.ParseAgent(opts.ConfigPath, raw)
	if err != nil {
		return err
	}
	log := opts.Logger.With("agent", cfg.Agent.ID)
	defer profiling.StartCPU(os.Getenv(profiling.CPUEnv), log)()
	if opts.RollbackAfter <= 0 {
		opts.RollbackAfter = cfg.Agent.RollbackAfter
	}
	if opts.RollbackAfter <= 0 {
		opts.RollbackAfter = config.DefaultRollbackAfter
	}
	if opts.HTTPListen != "" {
		cfg.Metrics.Listen = opts.HTTPListen
	}
	a := &Agent{opts: opts, log: log, started: time.Now(), cfg: cfg, raw: raw, hash: config.Hash(raw),
		cmdQueue: make(chan cmdMsg, 16), healthSet: make(chan struct{}, 1)}
	a.resumed = a.resumeTrial(raw)

	overflow, err := spool.ParseOverflow(cfg.Spool.Overflow)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	a.sp, err = spool.Open(filepath.Join(cfg.Agent.DataDir, "spool.db"), spool.Options{
		MaxBytes: int64(cfg.Spool.MaxBytes),
		MaxAge:   cfg.Spool.MaxAge,
		Overflow: overflow,
		Logger:   log.With("component", "spool"),
	})
	if err != nil {
		return err
	}
	log.Info("agent starting", "version", version.Version, "config", opts.ConfigPath, "hash", a.hash,
		"devices", len(cfg.Devices), "broker", cfg.MQTT.Broker)

	// Collection runs on its own context: at shutdown it is stopped first,
	// explicitly, before the forwarder.
	collCtx, stopColl := context.WithCancel(context.WithoutCancel(ctx))
	defer stopColl()
	a.collCtx = collCtx
	a.coll = startCollection(collCtx, cfg, a.sp, opts.Collect, log)
	if err := a.startForwarder(cfg); err != nil {
		a.coll.stop(context.Background())
		a.sp.Close()
		return err
	}

	var wg sync.WaitGroup
	loops, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	wg.Add(2)
	go func() { defer wg.Done(); a.healthLoop(loops) }()
	go func() { defer wg.Done(); a.commandLoop(loops) }()
	wg.Add(1)
	go func() { defer wg.Done(); profiling.OnSignal(loops, os.Getenv(ProfileDirEnv), profileRate, log) }()
	if cfg.Metrics.Listen != "" {
		srv, err := a.serveHTTP(cfg.Metrics.Listen)
		if err != nil {
			log.Error("local HTTP endpoint not started", "listen", cfg.Metrics.Listen, "err", err)
		} else {
			defer srv.Close()
		}
	}
	a.notifyReady()
	if opts.Started != nil {
		opts.Started(a)
	}

	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-opts.Reload:
			a.reloadFile()
		}
	}

	log.Info("agent stopping: sources first, then the pipeline, the forwarder, the spool")
	a.notifyStopping()
	stopLoops()
	wg.Wait()
	a.mu.Lock()
	coll := a.coll
	a.mu.Unlock()
	dctx, cancel := context.WithTimeout(context.Background(), opts.DrainTimeout)
	if err := coll.stop(dctx); err != nil {
		log.Error("pipeline not drained into the spool", "err", err)
	}
	cancel()
	a.stopForwarder()
	if err := a.sp.Close(); err != nil {
		return fmt.Errorf("closing the spool: %w", err)
	}
	log.Info("agent stopped")
	return nil
}

// startForwarder starts a forwarder for cfg's broker settings; a.mu is not held.
func (a *Agent) startForwarder(cfg *config.Agent) error {
	tlsCfg, err := mqttconn.TLSConfig(cfg.MQTT.TLS)
	if err != nil {
		return err
	}
	topics := wire.Topics{Prefix: cfg.MQTT.TopicPrefix}
	site, id := cfg.Agent.Site, cfg.Agent.ID
	var fwd link
	if cfg.MQTT.Format == "sparkplug_b" {
		fwd = a.edgeNode(cfg, tlsCfg)
	} else {
		fwd = a.nativeForwarder(cfg, tlsCfg, topics, site, id)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// The agent knows its forwarder before it runs: the forwarder's
	// OnConnect publishes health, which reads a.fwd, and a broker on the
	// same box can answer before the goroutine below is even scheduled.
	a.mu.Lock()
	a.fwd, a.fwdStop, a.fwdDone = fwd, cancel, done
	a.mu.Unlock()
	go func() {
		defer close(done)
		fwd.Run(ctx)
	}()
	return nil
}

func (a *Agent) nativeForwarder(cfg *config.Agent, tlsCfg *tls.Config, topics wire.Topics, site, id string) *forward.Forwarder {
	return forward.New(a.sp, forward.Options{
		Broker:       cfg.MQTT.Broker,
		ClientID:     cfg.MQTT.ClientID,
		Username:     cfg.MQTT.Username,
		Password:     cfg.MQTT.Password,
		TLS:          tlsCfg,
		KeepAlive:    cfg.MQTT.KeepAlive,
		MaxInflight:  cfg.MQTT.MaxInflight,
		BackoffMin:   a.opts.BrokerBackoffMin,
		BackoffMax:   a.opts.BrokerBackoffMax,
		FlushTimeout: a.opts.FlushTimeout,
		DataTopic:    topics.Data(site, id),
		StatusTopic:  topics.Status(site, id),
		Online:       a.status,
		CmdFilter:    topics.CmdWildcard(site, id),
		OnCommand:    a.onCommand,
		OnConnect:    func() { a.publishHealth() },
		Logger:       a.log.With("component", "forwarder"),
	})
}

// stopForwarder flushes and stops the current forwarder.
func (a *Agent) stopForwarder() {
	a.mu.Lock()
	stop, done := a.fwdStop, a.fwdDone
	a.mu.Unlock()
	stop()
	<-done
}

func (a *Agent) forwarder() link {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fwd
}

// Config returns the running config and its hash.
func (a *Agent) Config() (*config.Agent, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg, a.hash
}

func (a *Agent) status() wire.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return wire.Status{
		V:          wire.Version,
		Agent:      a.cfg.Agent.ID,
		Site:       a.cfg.Agent.Site,
		State:      wire.Online,
		Version:    version.Version,
		ConfigHash: a.hash,
		Started:    a.started.UnixMilli(),
		Devices:    a.coll.devices,
		Points:     a.coll.points,
		TS:         time.Now().UnixMilli(),
	}
}

// reloadFile reads the config file again (SIGHUP) and applies it when it is
// valid.
func (a *Agent) reloadFile() {
	raw, err := os.ReadFile(a.opts.ConfigPath)
	if err == nil {
		var cfg *config.Agent
		cfg, err = config.ParseAgent(a.opts.ConfigPath, raw)
		if err == nil {
			if err = a.canApply(cfg); err == nil {
				a.apply(cfg, raw)
				return
			}
		}
	}
	a.log.Error("config reload refused; the running config stays", "config", a.opts.ConfigPath, "err", err)
}

// canApply refuses what a running agent cannot change: its identity (the
// gateway tracks the agent by it) and its data directory (the spool).
func (a *Agent) canApply(cfg *config.Agent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.cfg
	var errs []error
	if cfg.Agent.ID != cur.Agent.ID || cfg.Agent.Site != cur.Agent.Site {
		errs = append(errs, fmt.Errorf("agent.id and agent.site cannot change while running (%s/%s -> %s/%s); install the new file and restart the agent",
			cur.Agent.Site, cur.Agent.ID, cfg.Agent.Site, cfg.Agent.ID))
	}
	if cfg.Agent.DataDir != cur.Agent.DataDir {
		errs = append(errs, fmt.Errorf("agent.data_dir cannot change while running (%s -> %s); restart the agent", cur.Agent.DataDir, cfg.Agent.DataDir))
	}
	return errors.Join(errs...)
}

// apply replaces the collection side with cfg's devices (the spool and, if
// the broker settings are unchanged, the forwarder stay) and returns the
// config's generation.
func (a *Agent) apply(cfg *config.Agent, raw []byte) uint64 {
	a.mu.Lock()
	old, oldColl := a.cfg, a.coll
	a.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), a.opts.DrainTimeout)
	if err := oldColl.stop(ctx); err != nil {
		a.log.Error("pipeline not drained into the spool while applying a config", "err", err)
	}
	cancel()
	coll := startCollection(a.collCtx, cfg, a.sp, a.opts.Collect, a.log)

	a.mu.Lock()
	st := oldColl.batcher.Stats()
	a.pipeBase.add(pipeStats{samples: st.Samples, batches: st.Batches, appended: st.Appended, lost: st.Lost, appendErrors: st.AppendErrors, suppressed: oldColl.suppressed()})
	a.cfg, a.raw, a.hash, a.coll = cfg, raw, config.Hash(raw), coll
	a.applyGen++
	gen := a.applyGen
	hash := a.hash
	a.mu.Unlock()

	if brokerChanged(old, cfg) {
		a.log.Info("broker settings changed: reconnecting with the new ones")
		a.stopForwarder()
		if err := a.startForwarder(cfg); err != nil {
			a.log.Error("new broker settings unusable", "err", err)
		}
	} else if err := a.forwarder().PublishStatus(); err != nil {
		a.log.Debug("status not published now; it will be on the next connection", "err", err)
	}
	select {
	case a.healthSet <- struct{}{}:
	default:
	}
	a.log.Info("config applied", "hash", hash, "devices", len(coll.devices))
	return gen
}

func brokerChanged(a, b *config.Agent) bool {
	return !reflect.DeepEqual(a.MQTT, b.MQTT)
}
