// Package gateway wires the platform gateway together and runs it: bbolt
// file, registry, embedded broker (optional), store (InfluxDB or the window
// store), MQTT ingest and the HTTP API, started in that order and stopped in
// reverse.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	bolt "go.etcd.io/bbolt"

	"github.com/weftiot/weft/config"
	"github.com/weftiot/weft/gateway/internal/api"
	"github.com/weftiot/weft/gateway/internal/broker"
	"github.com/weftiot/weft/gateway/internal/influx"
	"github.com/weftiot/weft/gateway/internal/ingest"
	"github.com/weftiot/weft/gateway/internal/registry"
	"github.com/weftiot/weft/gateway/internal/series"
	"github.com/weftiot/weft/gateway/internal/sparkplug"
	"github.com/weftiot/weft/gateway/internal/window"
	"github.com/weftiot/weft/internal/mqttconn"
	"github.com/weftiot/weft/internal/version"
	"github.com/weftiot/weft/wire"
)

// Options are what Run needs besides the config.
type Options struct {
	Log *slog.Logger
	// Ready, if set, is called once the HTTP API listens, with its address
	// and, in embedded mode, the broker's URL (tests use it).
	Ready func(httpAddr, brokerURL string)
	// Mount, if set, is called with the API server before it serves, so the
	// dashboard can add its handler.
	Mount func(*api.Server)
}

// Run runs the gateway until ctx is done.
func Run(ctx context.Context, cfg *config.Gateway, o Options) error {
	log := o.Log
	log.Info("starting", "version", version.String("weft-gateway"), "id", cfg.Gateway.ID)
	startProfiling(ctx, log)
	if err := os.MkdirAll(cfg.Gateway.DataDir, 0o750); err != nil {
		return fmt.Errorf("data_dir %s: %w", cfg.Gateway.DataDir, err)
	}
	dbPath := filepath.Join(cfg.Gateway.DataDir, "gateway.db")
	db, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("open %s (is another gateway using this data_dir?): %w", dbPath, err)
	}
	defer db.Close()

	reg, err := registry.Open(db, registry.Rules{OfflineAfter: cfg.Alerts.OfflineAfter, BacklogAgeAfter: cfg.Alerts.BacklogAgeAfter},
		log.With("component", "registry"))
	if err != nil {
		return err
	}
	defer func() {
		if err := reg.Flush(); err != nil {
			log.Error("saving the registry at shutdown failed", "error", err)
		}
	}()

	// Broker.
	brokerURL, user, pass := cfg.MQTT.Broker, cfg.MQTT.Username, cfg.MQTT.Password
	var tlsConf *tls.Config
	var emb *broker.Broker
	if cfg.MQTT.Broker == "embedded" {
		emb, err = broker.Start(broker.Options{Listen: cfg.Gateway.EmbeddedListen, Prefix: cfg.MQTT.TopicPrefix,
			DataDir: cfg.Gateway.DataDir, Log: log})
		if err != nil {
			return err
		}
		defer emb.Close()
		brokerURL = emb.URL()
		user, pass = emb.Credentials()
	} else if tlsConf, err = mqttconn.TLSConfig(cfg.MQTT.TLS); err != nil {
		return err
	}

	// Store.
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := ingest.NewMetrics(promReg)
	registerFleetMetrics(promReg, reg)
	var sink ingest.Sink
	var src series.Source
	batchSize, flush, writers := 5000, time.Second, 1
	if in := cfg.InfluxDB; in != nil {
		w := influx.New(influx.Options{URL: in.URL, Org: in.Org, Bucket: in.Bucket, Token: in.Token, Measurement: in.Measurement}, log.With("component", "influxdb"))
		defer w.Close()
		sink, src = influxSink{w}, w
		batchSize, flush = in.BatchSize, in.FlushInterval
		writers = influx.Writers // the window store below takes one write at a time
		log.Info("storing data in InfluxDB", "url", in.URL, "bucket", in.Bucket, "measurement", w.Measurement())
	} else {
		ws, err := window.Open(db, time.Hour, 3600)
		if err != nil {
			return err
		}
		sink, src = ws, ws
		log.Warn("no influxdb section: long-term storage is OFF; keeping only the last hour of each point (at most 3600 samples) in " + dbPath)
	}

	in := ingest.New(ingest.Options{
		Broker: brokerURL, ClientID: cfg.MQTT.ClientID, Username: user, Password: pass, TLS: tlsConf,
		KeepAlive: cfg.MQTT.KeepAlive, Prefix: cfg.MQTT.TopicPrefix, SharedGroup: cfg.MQTT.SharedGroup,
		GatewayID: cfg.Gateway.ID, BatchSize: batchSize, FlushInterval: flush, Writers: writers,
		Sink: sink, Registry: reg, Metrics: metrics, Log: log,
		BeforeAck: reg.Flush,
	})

	if err := api.CheckTokens(cfg.Auth.AdminTokens, cfg.Auth.ReadTokens); err != nil {
		log.Warn(err.Error())
	}
	srv := api.New(api.Options{Registry: reg, Series: src, Commander: in,
		AdminTokens: cfg.Auth.AdminTokens, ReadTokens: cfg.Auth.ReadTokens, Gatherer: promReg, Log: log,
		Ready: func() error {
			if !in.Connected() {
				return errors.New("not connected to the MQTT broker " + brokerURL)
			}
			return nil
		}})
	if o.Mount != nil {
		o.Mount(srv)
	}
	ln, err := net.Listen("tcp", cfg.Gateway.HTTP)
	if err != nil {
		return fmt.Errorf("gateway.http %s: %w", cfg.Gateway.HTTP, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	var wg sync.WaitGroup
	ictx, stopIngest := context.WithCancel(context.Background())
	defer stopIngest()
	wg.Add(3)
	go func() { defer wg.Done(); _ = in.Run(ictx) }()
	if sp := cfg.MQTT.Sparkplug; sp.Enabled {
		// Sparkplug B host: its own connection (see package sparkplug) and
		// its own InfluxDB writer (a Writer serves one goroutine; the
		// window store's bbolt transactions serialise its writers).
		spSink := sink
		if in := cfg.InfluxDB; in != nil {
			w := influx.New(influx.Options{URL: in.URL, Org: in.Org, Bucket: in.Bucket, Token: in.Token, Measurement: in.Measurement}, log.With("component", "influxdb-sparkplug"))
			defer w.Close()
			spSink = influxSink{w}
		}
		host := sparkplug.New(sparkplug.Options{
			Broker: brokerURL, ClientID: cfg.MQTT.ClientID + "-sparkplug", Username: user, Password: pass, TLS: tlsConf,
			KeepAlive: cfg.MQTT.KeepAlive, HostID: sp.HostID, Sink: spSink, Registry: reg, Metrics: promReg,
			BatchSize: batchSize, FlushInterval: flush, Log: log,
		})
		wg.Add(1)
		go func() { defer wg.Done(); _ = host.Run(ictx) }()
	}
	go func() {
		defer wg.Done()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "error", err)
		}
	}()
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				reg.Tick()
				if err := reg.Flush(); err != nil {
					metrics.Errors.WithLabelValues("registry_save").Inc()
					log.Error("saving the registry failed", "error", err)
				}
			case <-ictx.Done():
				return
			}
		}
	}()
	log.Info("gateway running", "http", ln.Addr().String(), "broker", brokerURL)
	if o.Ready != nil {
		bu := ""
		if emb != nil {
			bu = emb.URL()
		}
		o.Ready(ln.Addr().String(), bu)
	}
	<-ctx.Done()
	log.Info("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = hs.Shutdown(sctx)
	cancel()
	stopIngest()
	wg.Wait()
	log.Info("stopped")
	return nil
}

// influxSink adapts the InfluxDB writer to ingest.Sink.
type influxSink struct{ w *influx.Writer }

func (s influxSink) Write(ctx context.Context, b []*wire.Batch) (int, int, int, error) {
	r, err := s.w.Write(ctx, b)
	return r.Points, r.Rejected, r.Skipped, err
}

func registerFleetMetrics(pr *prometheus.Registry, reg *registry.Registry) {
	pr.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_gateway_agents_online", Help: "Agents whose status is online."},
			func() float64 { on, _ := reg.Online(); return float64(on) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_gateway_agents", Help: "Agents the registry knows."},
			func() float64 { _, all := reg.Online(); return float64(all) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weft_gateway_alerts_active", Help: "Alerts active now."},
			func() float64 { return float64(len(reg.Alerts(false, 0))) }),
	)
}
