package runner

import (
	"encoding/json"
	"errors"
	"html/template"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftiot/weft/internal/version"
	"github.com/weftiot/weft/wire"
)

// serveHTTP starts the local endpoint of metrics.listen: /metrics,
// /healthz, /readyz and a read-only status page at /.
func (a *Agent) serveHTTP(listen string) (*http.Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &metrics{a: a})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a.Health())
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !a.forwarder().Connected() {
			http.Error(w, "not connected to the broker (collecting into the spool)", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := statusPage.Execute(w, a.Health()); err != nil {
			a.log.Debug("status page", "err", err)
		}
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.httpAddr = ln.Addr().String()
	a.mu.Unlock()
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("local HTTP endpoint stopped", "err", err)
		}
	}()
	a.log.Info("local HTTP endpoint", "listen", ln.Addr().String())
	return srv, nil
}

// HTTPAddr is the address the local HTTP endpoint listens on ("" when off).
func (a *Agent) HTTPAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.httpAddr
}

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"ms": func(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() },
}).Parse(`<!doctype html><meta charset="utf-8"><title>weft-agent {{.Agent}}</title>
<style>body{font:14px sans-serif;margin:2em}td,th{padding:2px 10px;text-align:left}.down{color:#b00}.degraded{color:#a60}</style>
<h1>weft-agent {{.Agent}} <small>site {{.Site}}</small></h1>
<p>version {{.Version}} · config {{.ConfigHash}} · up {{.UptimeS}}s ·
broker {{if .Forwarder.Connected}}connected{{else}}<b class="down">not connected</b>{{end}}
{{with .Forwarder.LastError}}({{.}}){{end}}</p>
<p>spool: {{.Spool.Batches}} batches, {{.Spool.Samples}} samples, {{.Spool.Bytes}} bytes, oldest {{ms .Spool.OldestAgeMs}};
dropped {{.Spool.DroppedOldest}} oldest / {{.Spool.DroppedNewest}} newest; last seq {{.Spool.LastSeq}}</p>
<table><tr><th>device<th>protocol<th>state<th>reads<th>errors<th>requests<th>latency ms<th>samples<th>last error
{{range .Devices}}<tr><td>{{.ID}}<td>{{.Protocol}}<td class="{{.State}}">{{.State}}<td>{{.Reads}}<td>{{.Errors}}<td>{{.Requests}}<td>{{printf "%.1f" .LatencyMs}}<td>{{.Samples}}<td>{{.LastError}}
{{end}}</table>`))

// metrics exposes the agent's figures to Prometheus, read at scrape time
// from the same sources as the health message. docs/metrics.md lists them.
type metrics struct{ a *Agent }

var (
	mInfo          = prometheus.NewDesc("weft_agent_info", "Constant 1, labelled with the agent's identity, version and config hash.", []string{"agent", "site", "version", "config_hash"}, nil)
	mUptime        = prometheus.NewDesc("weft_agent_uptime_seconds", "Seconds since the agent started.", nil, nil)
	mSpoolBatches  = prometheus.NewDesc("weft_agent_spool_batches", "Batches in the spool not yet acknowledged by the broker.", nil, nil)
	mSpoolSamples  = prometheus.NewDesc("weft_agent_spool_samples", "Samples in those batches.", nil, nil)
	mSpoolBytes    = prometheus.NewDesc("weft_agent_spool_bytes", "Encoded bytes of those batches (what spool.max_bytes bounds).", nil, nil)
	mSpoolFile     = prometheus.NewDesc("weft_agent_spool_file_bytes", "Size of spool.db on disk.", nil, nil)
	mSpoolOldest   = prometheus.NewDesc("weft_agent_spool_oldest_age_seconds", "Age of the oldest unsent batch (0 when the spool is empty).", nil, nil)
	mSpoolDropped  = prometheus.NewDesc("weft_agent_spool_dropped_samples_total", "Samples the spool dropped, by reason: oldest (drop_oldest, max_age), newest (drop_newest, refused), corrupt.", []string{"reason"}, nil)
	mSpoolWriteErr = prometheus.NewDesc("weft_agent_spool_write_errors_total", "Failed spool commits (disk errors, disk full).", nil, nil)
	mSpoolLastSeq  = prometheus.NewDesc("weft_agent_spool_last_seq", "Highest batch sequence number handed out.", nil, nil)
	mConnected     = prometheus.NewDesc("weft_agent_mqtt_connected", "1 while the broker connection is up.", nil, nil)
	mReconnects    = prometheus.NewDesc("weft_agent_mqtt_reconnects_total", "Broker connections made after the first.", nil, nil)
	mPubBatches    = prometheus.NewDesc("weft_agent_mqtt_published_batches_total", "Batches acknowledged by the broker (PUBACK).", nil, nil)
	mPubSamples    = prometheus.NewDesc("weft_agent_mqtt_published_samples_total", "Samples in those batches.", nil, nil)
	mPipeSamples   = prometheus.NewDesc("weft_agent_pipeline_samples_total", "Samples that passed report by exception into a batch.", nil, nil)
	mPipeSupp      = prometheus.NewDesc("weft_agent_pipeline_suppressed_samples_total", "Samples held back by report by exception (within the deadband, before the heartbeat).", nil, nil)
	mPipeBatches   = prometheus.NewDesc("weft_agent_pipeline_batches_total", "Batches appended to the spool.", nil, nil)
	mPipeLost      = prometheus.NewDesc("weft_agent_pipeline_lost_samples_total", "Samples whose batch the spool refused or failed to store.", nil, nil)
	mCommands      = prometheus.NewDesc("weft_agent_commands_total", "Remote commands received.", nil, nil)
	mCmdErrors     = prometheus.NewDesc("weft_agent_command_errors_total", "Remote commands refused (malformed, unknown, invalid config).", nil, nil)
	mRollbacks     = prometheus.NewDesc("weft_agent_config_rollbacks_total", "Remote configs rolled back because the broker was unreachable with them.", nil, nil)
	devLabels      = []string{"device", "protocol"}
	mDevState      = prometheus.NewDesc("weft_agent_device_state", "1 for the device's current state (ok, degraded, down), 0 for the others.", []string{"device", "protocol", "state"}, nil)
	mDevReads      = prometheus.NewDesc("weft_agent_device_reads_total", "Polls of the device.", devLabels, nil)
	mDevErrors     = prometheus.NewDesc("weft_agent_device_errors_total", "Failed connects, polls and subscriptions of the device.", devLabels, nil)
	mDevRequests   = prometheus.NewDesc("weft_agent_device_requests_total", "Protocol requests (Modbus PDUs, OPC UA reads) the driver issued.", devLabels, nil)
	mDevOverruns   = prometheus.NewDesc("weft_agent_device_overruns_total", "Polls that took longer than the interval (ticks skipped).", devLabels, nil)
	mDevSamples    = prometheus.NewDesc("weft_agent_device_samples_total", "Samples the device's driver emitted (before report by exception).", devLabels, nil)
	mDevLatency    = prometheus.NewDesc("weft_agent_device_poll_seconds", "Duration of the device's last poll.", devLabels, nil)
	mDevLastOK     = prometheus.NewDesc("weft_agent_device_last_ok_timestamp_seconds", "Unix time of the device's last successful poll or subscribed sample.", devLabels, nil)
)

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mInfo, mUptime, mSpoolBatches, mSpoolSamples, mSpoolBytes, mSpoolFile, mSpoolOldest,
		mSpoolDropped, mSpoolWriteErr, mSpoolLastSeq, mConnected, mReconnects, mPubBatches, mPubSamples, mPipeSamples, mPipeSupp,
		mPipeBatches, mPipeLost, mCommands, mCmdErrors, mRollbacks, mDevState, mDevReads, mDevErrors, mDevRequests, mDevOverruns,
		mDevSamples, mDevLatency, mDevLastOK} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	a := m.a
	h := a.Health()
	st := a.sp.Stats()
	p := a.pipeline()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	c := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	g(mInfo, 1, h.Agent, h.Site, version.Version, h.ConfigHash)
	g(mUptime, time.Since(a.started).Seconds())
	g(mSpoolBatches, float64(st.Batches))
	g(mSpoolSamples, float64(st.Samples))
	g(mSpoolBytes, float64(st.Bytes))
	g(mSpoolFile, float64(st.FileBytes))
	g(mSpoolOldest, st.OldestAge.Seconds())
	c(mSpoolDropped, float64(st.DroppedOldest-st.DroppedExpired), "oldest")
	c(mSpoolDropped, float64(st.DroppedExpired), "expired")
	c(mSpoolDropped, float64(st.DroppedNewest), "newest")
	c(mSpoolDropped, float64(st.DroppedCorrupt), "corrupt")
	c(mSpoolWriteErr, float64(st.WriteErrors))
	g(mSpoolLastSeq, float64(st.LastSeq))
	g(mConnected, b2f(h.Forwarder.Connected))
	c(mReconnects, float64(h.Forwarder.Reconnects))
	c(mPubBatches, float64(h.Forwarder.PublishedBatch))
	c(mPubSamples, float64(h.Forwarder.PublishedSamp))
	c(mPipeSamples, float64(p.samples))
	c(mPipeSupp, float64(p.suppressed))
	c(mPipeBatches, float64(p.batches))
	c(mPipeLost, float64(p.lost))
	c(mCommands, float64(a.commands.Load()))
	c(mCmdErrors, float64(a.cmdErrors.Load()))
	c(mRollbacks, float64(a.rollbacks.Load()))
	for _, d := range h.Devices {
		for _, s := range []string{wire.DeviceOK, wire.DeviceDegraded, wire.DeviceDown} {
			g(mDevState, b2f(d.State == s), d.ID, d.Protocol, s)
		}
		c(mDevReads, float64(d.Reads), d.ID, d.Protocol)
		c(mDevErrors, float64(d.Errors), d.ID, d.Protocol)
		c(mDevRequests, float64(d.Requests), d.ID, d.Protocol)
		c(mDevOverruns, float64(d.Overruns), d.ID, d.Protocol)
		c(mDevSamples, float64(d.Samples), d.ID, d.Protocol)
		g(mDevLatency, d.LatencyMs/1000, d.ID, d.Protocol)
		if d.LastOK > 0 {
			g(mDevLastOK, float64(d.LastOK)/1000, d.ID, d.Protocol)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
