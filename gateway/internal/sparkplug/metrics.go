package sparkplug

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the host's figures on the gateway's /metrics; docs/sparkplug.md
// lists them.
type metrics struct {
	messages     *prometheus.CounterVec // by type and outcome
	rebirths     *prometheus.CounterVec // by reason and sent/held
	samples      prometheus.Counter
	written      prometheus.Counter
	rejected     prometheus.Counter
	metricErrors prometheus.Counter
	errors       *prometheus.CounterVec
}

// newMetrics makes the metrics, registered on reg as they are made.
func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		messages: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_gateway_sparkplug_messages_total",
			Help: "Sparkplug B messages received, by type (NBIRTH, DDATA, STATE, ...) and outcome: ok, ignored, malformed, too_large, topic.",
		}, []string{"type", "outcome"}),
		rebirths: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_gateway_sparkplug_rebirth_requests_total",
			Help: "Rebirth requests (NCMD Node Control/Rebirth), by reason (seq_gap, alias, unborn, device, bad_birth) and action (sent, or held by the rate limit).",
		}, []string{"reason", "action"}),
		samples: f.NewCounter(prometheus.CounterOpts{
			Name: "weft_gateway_sparkplug_samples_total",
			Help: "Metric values read from Sparkplug B births and data, queued for the store.",
		}),
		written: f.NewCounter(prometheus.CounterOpts{
			Name: "weft_gateway_sparkplug_points_written_total",
			Help: "Points from Sparkplug B the store accepted.",
		}),
		rejected: f.NewCounter(prometheus.CounterOpts{
			Name: "weft_gateway_sparkplug_points_rejected_total",
			Help: "Points from Sparkplug B the store refused as bad and that were dropped.",
		}),
		metricErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "weft_gateway_sparkplug_metric_errors_total",
			Help: "Metrics not stored: a type Weft does not carry (DataSet, Template, Bytes, arrays), a value that does not fit its datatype, or an unknown alias.",
		}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_gateway_sparkplug_errors_total",
			Help: "Errors of the Sparkplug host by kind: connect, connection_lost, write.",
		}, []string{"kind"}),
	}
	return m
}
