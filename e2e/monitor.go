package e2e

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// monitorPeriod is how often the Monitor samples; it is also the
// resolution of the latency figures.
const monitorPeriod = 250 * time.Millisecond

// Sample is what the Monitor saw at one moment. A figure it could not read
// (process down, query failed) is -1.
type Sample struct {
	At time.Time
	// Lag is now minus the newest stored counter sample's source time.
	Lag time.Duration
	// AgentBacklog is weft_agent_spool_samples; AgentPublished
	// weft_agent_mqtt_published_samples_total (restarts at 0 with the
	// process); AgentDropped every weft_agent_spool_dropped_samples_total.
	AgentBacklog, AgentPublished, AgentDropped float64
	// AgentConnected is weft_agent_mqtt_connected.
	AgentConnected float64
	// GatewayWritten is weft_gateway_points_written_total; GatewayPending
	// weft_gateway_pending_messages.
	GatewayWritten, GatewayPending float64
	// RSS of the agent and the gateway, bytes (0 when not running).
	AgentRSS, GatewayRSS int64
}

// Monitor samples the running set every monitorPeriod, and records the
// end-to-end latency of one device's counter samples: the time from a
// sample's source timestamp until a query first finds it in InfluxDB.
type Monitor struct {
	h    *Harness
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	samples []Sample
	seen    map[int64]bool  // source times (ms) of the latency device already found
	latency []time.Duration // one per sample of the latency device
	measure bool
}

// latencyDevice is the device whose samples are timed.
const latencyDevice = 1

func newMonitor(h *Harness) *Monitor {
	m := &Monitor{h: h, done: make(chan struct{}), seen: map[int64]bool{}}
	m.wg.Add(1)
	go m.run()
	return m
}

func (m *Monitor) stop() {
	select {
	case <-m.done:
		return
	default:
	}
	close(m.done)
	m.wg.Wait()
}

func (m *Monitor) run() {
	defer m.wg.Done()
	t := time.NewTicker(monitorPeriod)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			m.sample()
		}
	}
}

func (m *Monitor) sample() {
	h := m.h
	s := Sample{At: time.Now(), Lag: -1, AgentBacklog: -1, AgentPublished: -1, AgentDropped: -1, AgentConnected: -1, GatewayWritten: -1, GatewayPending: -1}
	if ms, err := h.AgentMetrics(); err == nil {
		s.AgentBacklog = sum(ms, "weft_agent_spool_samples")
		s.AgentPublished = sum(ms, "weft_agent_mqtt_published_samples_total")
		s.AgentDropped = sum(ms, "weft_agent_spool_dropped_samples_total")
		s.AgentConnected = sum(ms, "weft_agent_mqtt_connected")
	}
	if ms, err := h.GatewayMetrics(); err == nil {
		s.GatewayWritten = sum(ms, "weft_gateway_points_written_total")
		s.GatewayPending = sum(ms, "weft_gateway_pending_messages")
	}
	s.AgentRSS, s.GatewayRSS = h.Agent.RSS(), h.Gateway.RSS()
	if ts, err := h.latestTime(); err == nil && ts > 0 {
		s.Lag = s.At.Sub(time.UnixMilli(ts))
	}
	m.mu.Lock()
	measure := m.measure
	m.samples = append(m.samples, s)
	m.mu.Unlock()
	if measure {
		m.timeLatency()
	}
}

// timeLatency finds the latency device's samples stored in the last 30 s
// that were not seen before.
func (m *Monitor) timeLatency() {
	now := time.Now()
	series, err := m.h.Influx.QueryErr(fmt.Sprintf(`SELECT "value_int" FROM "weft" WHERE "point" = '%s' AND "device" = '%s' AND time > now() - 30s`, tickPoint, deviceName(latencyDevice)))
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ser := range series {
		ti := ser.Column("time")
		for _, r := range ser.Values {
			ts := jsonInt(r[ti])
			if m.seen[ts] {
				continue
			}
			m.seen[ts] = true
			m.latency = append(m.latency, now.Sub(time.UnixMilli(ts)))
		}
	}
}

// MeasureLatency turns latency timing on or off. Samples stored while it
// is off are marked seen when it is turned on, so only new ones count.
func (m *Monitor) MeasureLatency(on bool) {
	if on {
		m.timeLatency() // mark what is already stored as seen
		m.mu.Lock()
		m.latency = nil
		m.mu.Unlock()
	}
	m.mu.Lock()
	m.measure = on
	m.mu.Unlock()
}

// Latency returns the timed latencies, sorted.
func (m *Monitor) Latency() []time.Duration {
	m.mu.Lock()
	out := append([]time.Duration(nil), m.latency...)
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Samples returns what was sampled in [from, to].
func (m *Monitor) Samples(from, to time.Time) []Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Sample
	for _, s := range m.samples {
		if !s.At.Before(from) && !s.At.After(to) {
			out = append(out, s)
		}
	}
	return out
}

// Recovered returns how long after from the set was live again: the
// first sample with the newest stored data younger than maxLag and the
// agent's backlog under maxBacklog samples. ok is false if that never
// happened by the last sample.
func (m *Monitor) Recovered(from time.Time, maxLag time.Duration, maxBacklog float64) (time.Duration, bool) {
	for _, s := range m.Samples(from, time.Now()) {
		if s.Lag >= 0 && s.Lag < maxLag && s.AgentBacklog >= 0 && s.AgentBacklog < maxBacklog {
			return s.At.Sub(from), true
		}
	}
	return 0, false
}

// Connected returns how long after from the agent was first seen
// connected to the broker.
func (m *Monitor) Connected(from time.Time) (time.Duration, bool) {
	for _, s := range m.Samples(from, time.Now()) {
		if s.AgentConnected == 1 {
			return s.At.Sub(from), true
		}
	}
	return 0, false
}

// Last returns the newest sample.
func (m *Monitor) Last() Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.samples) == 0 {
		return Sample{}
	}
	return m.samples[len(m.samples)-1]
}

// Percentile returns the p-th percentile (0..100) of sorted durations.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// Memory is a process's RSS at the start, its peak and at the end of a
// window.
type Memory struct{ Start, Peak, End int64 }

func (m Memory) String() string {
	return fmt.Sprintf("start %.1f MiB, peak %.1f MiB, end %.1f MiB", mib(m.Start), mib(m.Peak), mib(m.End))
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// RSS returns the agent's and the gateway's memory over [from, to].
func (m *Monitor) RSS(from, to time.Time) (agent, gateway Memory) {
	for _, s := range m.Samples(from, to) {
		for _, x := range []struct {
			mem *Memory
			v   int64
		}{{&agent, s.AgentRSS}, {&gateway, s.GatewayRSS}} {
			if x.v <= 0 {
				continue
			}
			if x.mem.Start == 0 {
				x.mem.Start = x.v
			}
			x.mem.Peak = max(x.mem.Peak, x.v)
			x.mem.End = x.v
		}
	}
	return agent, gateway
}
