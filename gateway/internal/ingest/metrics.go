package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the ingest figures exported on /metrics. docs/gateway.md
// lists them.
type Metrics struct {
	Messages       *prometheus.CounterVec // data messages by outcome
	Control        *prometheus.CounterVec // status, health, reply messages by kind and outcome
	Batches        *prometheus.CounterVec // data batches by sequence outcome
	PointsWritten  prometheus.Counter
	PointsRejected prometheus.Counter
	PointsSkipped  prometheus.Counter
	WriteSeconds   prometheus.Histogram
	Errors         *prometheus.CounterVec // by kind
	Pending        prometheus.Gauge       // data messages received and not yet acknowledged
	PendingBytes   prometheus.Gauge       // their payload bytes
}

// NewMetrics makes the metrics, registered on reg as they are made.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Messages: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_gateway_messages_total",
			Help: "Data messages received, by outcome: stored, malformed, too_large, version, mismatch.",
		}, []string{"outcome"}),
		Control: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_gateway_control_messages_total",
			Help: "Status, health and reply messages received, by kind and outcome (ok or the reason rejected).",
		}, []string{"kind", "outcome"}),
		Batches: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_gateway_batches_total",
			Help: "Data batches decoded, by sequence outcome: next, ahead (numbers skipped), late (filled a hole), duplicate, reset.",
		}, []string{"seq"}),
		PointsWritten: f.NewCounter(prometheus.CounterOpts{
			Name: "weft_gateway_points_written_total",
			Help: "Points the store accepted.",
		}),
		PointsRejected: f.NewCounter(prometheus.CounterOpts{
			Name: "weft_gateway_points_rejected_total",
			Help: "Points the store refused as bad (InfluxDB 400, for example a field type conflict) and that were dropped.",
		}),
		PointsSkipped: f.NewCounter(prometheus.CounterOpts{
			Name: "weft_gateway_points_skipped_total",
			Help: "Samples with nothing to store (a good sample without a value, a non-finite float).",
		}),
		WriteSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "weft_gateway_write_duration_seconds",
			Help:    "Time of one successful store write (all its HTTP requests).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		Errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_gateway_errors_total",
			Help: "Errors by kind: write (a store write failed and is retried), connection_lost, subscribe, registry_save, command.",
		}, []string{"kind"}),
		Pending: f.NewGauge(prometheus.GaugeOpts{
			Name: "weft_gateway_pending_messages",
			Help: "Data messages received and not yet acknowledged to the broker.",
		}),
		PendingBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "weft_gateway_pending_bytes",
			Help: "Payload bytes of the data messages received and not yet acknowledged; at most the in-flight budget (16 MiB) plus one message.",
		}),
	}
	return m
}
