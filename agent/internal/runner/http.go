package runner

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/weftiot/weft/internal/version"
	"github.com/weftiot/weft/wire"
)

// serveHTTP starts the local endpoint of metrics.listen: /metrics,
// /healthz, /readyz and a read-only status page at /.
func (a *Agent) serveHTTP(listen string) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if err := a.writeMetrics(w); err != nil {
			a.log.Debug("metrics", "err", err)
		}
	})
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
		if err := writeStatus(w, a.Health()); err != nil {
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

// writeStatus writes the status page of h. It is written with fmt rather
// than html/template, which (with text/template and its reflection) costs
// the agent binary about 0.5 MB; every string from the config, a device or
// the network goes through html.EscapeString (quotes included, so it is
// safe in a quoted attribute too).
func writeStatus(w io.Writer, h wire.Health) error {
	e := html.EscapeString
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<!doctype html><meta charset="utf-8"><title>weft-agent %s</title>
<style>body{font:14px sans-serif;margin:2em}td,th{padding:2px 10px;text-align:left}.down{color:#b00}.degraded{color:#a60}</style>
<h1>weft-agent %s <small>site %s</small></h1>
<p>version %s · config %s · up %ds ·
broker `, e(h.Agent), e(h.Agent), e(h.Site), e(h.Version), e(h.ConfigHash), h.UptimeS)
	if h.Forwarder.Connected {
		bw.WriteString("connected")
	} else {
		bw.WriteString(`<b class="down">not connected</b>`)
	}
	if h.Forwarder.LastError != "" {
		fmt.Fprintf(bw, "\n(%s)", e(h.Forwarder.LastError))
	}
	fmt.Fprintf(bw, " · publishing %.1f samples/s, %.2f batches/s", h.Forwarder.SamplesPerS, h.Forwarder.BatchesPerS)
	sp := h.Spool
	fmt.Fprintf(bw, `</p>
<p>spool: %d batches, %d samples, %d bytes, oldest %v;
dropped %d oldest (%d of them expired) / %d newest / %d corrupt; %d lost by the pipeline; last seq %d</p>
<table><tr><th>device<th>protocol<th>state<th>reads<th>errors<th>errors by kind<th>requests<th>latency ms<th>samples<th>last error
`, sp.Batches, sp.Samples, sp.Bytes, time.Duration(sp.OldestAgeMs)*time.Millisecond, sp.DroppedOldest, sp.DroppedExpired, sp.DroppedNewest, sp.DroppedCorrupt, sp.LostSamples, sp.LastSeq)
	for _, d := range h.Devices {
		fmt.Fprintf(bw, "<tr><td>%s<td>%s<td class=\"%s\">%s<td>%d<td>%d<td>",
			e(d.ID), e(d.Protocol), e(d.State), e(d.State), d.Reads, d.Errors)
		sep := ""
		for _, k := range errorKinds {
			if n := d.ErrorsByKind[k]; n > 0 {
				fmt.Fprintf(bw, "%s%s %d", sep, k, n)
				sep = ", "
			}
		}
		fmt.Fprintf(bw, "<td>%d<td>%.1f<td>%d<td>%s\n", d.Requests, d.LatencyMs, d.Samples, e(d.LastError))
	}
	bw.WriteString("</table>")
	return bw.Flush()
}

// writeMetrics writes the agent's figures in the Prometheus text format,
// read at scrape time from the same sources as the health message.
// docs/metrics.md lists them. The agent writes the format itself: the
// client library would add over a megabyte to a binary meant for small
// edge boxes, for a page of gauges and counters.
func (a *Agent) writeMetrics(w io.Writer) error {
	h := a.Health()
	st := a.sp.Stats()
	p := a.pipeline()
	e := promtext{w: bufio.NewWriter(w)}
	e.one("weft_agent_info", gauge, "Constant 1, labelled with the agent's identity, version and config hash.", 1,
		"agent", h.Agent, "config_hash", h.ConfigHash, "site", h.Site, "version", version.Version)
	e.one("weft_agent_uptime_seconds", gauge, "Seconds since the agent started.", time.Since(a.started).Seconds())
	e.one("weft_agent_spool_batches", gauge, "Batches in the spool not yet acknowledged by the broker.", float64(st.Batches))
	e.one("weft_agent_spool_samples", gauge, "Samples in those batches.", float64(st.Samples))
	e.one("weft_agent_spool_bytes", gauge, "Encoded bytes of those batches (what spool.max_bytes bounds).", float64(st.Bytes))
	e.one("weft_agent_spool_file_bytes", gauge, "Size of spool.db on disk.", float64(st.FileBytes))
	e.one("weft_agent_spool_oldest_age_seconds", gauge, "Age of the oldest unsent batch (0 when the spool is empty).", st.OldestAge.Seconds())
	e.family("weft_agent_spool_dropped_samples_total", counter, "Samples the spool dropped, by reason: oldest (drop_oldest at max_bytes), expired (max_age), newest (drop_newest, refused), corrupt.")
	e.sample("weft_agent_spool_dropped_samples_total", float64(st.DroppedOldest-st.DroppedExpired), "reason", "oldest")
	e.sample("weft_agent_spool_dropped_samples_total", float64(st.DroppedExpired), "reason", "expired")
	e.sample("weft_agent_spool_dropped_samples_total", float64(st.DroppedNewest), "reason", "newest")
	e.sample("weft_agent_spool_dropped_samples_total", float64(st.DroppedCorrupt), "reason", "corrupt")
	e.one("weft_agent_spool_write_errors_total", counter, "Failed spool commits (disk errors, disk full).", float64(st.WriteErrors))
	e.one("weft_agent_spool_last_seq", gauge, "Highest batch sequence number handed out.", float64(st.LastSeq))
	e.one("weft_agent_mqtt_connected", gauge, "1 while the broker connection is up.", b2f(h.Forwarder.Connected))
	e.one("weft_agent_mqtt_reconnects_total", counter, "Broker connections made after the first.", float64(h.Forwarder.Reconnects))
	e.one("weft_agent_mqtt_published_batches_total", counter, "Batches acknowledged by the broker (PUBACK).", float64(h.Forwarder.PublishedBatch))
	e.one("weft_agent_mqtt_published_samples_total", counter, "Samples in those batches.", float64(h.Forwarder.PublishedSamp))
	e.one("weft_agent_pipeline_samples_total", counter, "Samples that passed report by exception into a batch.", float64(p.samples))
	e.one("weft_agent_pipeline_suppressed_samples_total", counter, "Samples held back by report by exception (within the deadband, before the heartbeat).", float64(p.suppressed))
	e.one("weft_agent_pipeline_batches_total", counter, "Batches appended to the spool.", float64(p.batches))
	e.one("weft_agent_pipeline_lost_samples_total", counter, "Samples whose batch the spool refused or failed to store.", float64(p.lost))
	e.one("weft_agent_commands_total", counter, "Remote commands received.", float64(a.commands.Load()))
	e.one("weft_agent_command_errors_total", counter, "Remote commands refused (malformed, unknown, invalid config).", float64(a.cmdErrors.Load()))
	e.one("weft_agent_config_rollbacks_total", counter, "Remote configs rolled back because the broker was unreachable with them.", float64(a.rollbacks.Load()))

	e.family("weft_agent_device_state", gauge, "1 for the device's current state (ok, degraded, down), 0 for the others.")
	for _, d := range h.Devices {
		for _, s := range []string{wire.DeviceOK, wire.DeviceDegraded, wire.DeviceDown} {
			e.sample("weft_agent_device_state", b2f(d.State == s), "device", d.ID, "protocol", d.Protocol, "state", s)
		}
	}
	perDevice := []struct {
		name, typ, help string
		value           func(wire.DeviceHealth) (float64, bool)
	}{
		{"weft_agent_device_reads_total", counter, "Polls of the device.", func(d wire.DeviceHealth) (float64, bool) { return float64(d.Reads), true }},
		{"weft_agent_device_errors_total", counter, "Failed connects, polls and subscriptions of the device.", func(d wire.DeviceHealth) (float64, bool) { return float64(d.Errors), true }},
		{"weft_agent_device_requests_total", counter, "Protocol requests (Modbus PDUs, OPC UA reads) the driver issued.", func(d wire.DeviceHealth) (float64, bool) { return float64(d.Requests), true }},
		{"weft_agent_device_overruns_total", counter, "Polls that took longer than the interval (ticks skipped).", func(d wire.DeviceHealth) (float64, bool) { return float64(d.Overruns), true }},
		{"weft_agent_device_samples_total", counter, "Samples the device's driver emitted (before report by exception).", func(d wire.DeviceHealth) (float64, bool) { return float64(d.Samples), true }},
		{"weft_agent_device_poll_seconds", gauge, "Duration of the device's last poll.", func(d wire.DeviceHealth) (float64, bool) { return d.LatencyMs / 1000, true }},
		{"weft_agent_device_last_ok_timestamp_seconds", gauge, "Unix time of the device's last successful poll or subscribed sample.", func(d wire.DeviceHealth) (float64, bool) { return float64(d.LastOK) / 1000, d.LastOK > 0 }},
	}
	for _, m := range perDevice {
		e.family(m.name, m.typ, m.help)
		for _, d := range h.Devices {
			if v, ok := m.value(d); ok {
				e.sample(m.name, v, "device", d.ID, "protocol", d.Protocol)
			}
		}
	}
	e.family("weft_agent_device_errors_by_kind_total", counter, "Failed requests of the device by kind: timeout, io, frame, exception, bad_status, bad_value (health's errors_by_kind; 0 for a kind not seen).")
	for _, d := range h.Devices {
		for _, k := range errorKinds {
			e.sample("weft_agent_device_errors_by_kind_total", float64(d.ErrorsByKind[k]), "device", d.ID, "kind", k, "protocol", d.Protocol)
		}
	}
	e.process()
	return e.w.Flush()
}

// errorKinds are the kinds of DeviceHealth.ErrorsByKind, in the order
// /metrics and the status page show them.
var errorKinds = [...]string{wire.ErrorTimeout, wire.ErrorIO, wire.ErrorFrame, wire.ErrorException, wire.ErrorBadStatus, wire.ErrorBadValue}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
