package flowcred

import (
	"bytes"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Metrics (design.md, "Observability"), with the Prometheus Go client on a
// registry of the backend's own: Vault does not forward an external
// plugin's go-metrics, so the plugin serves them at metrics/. Counters are
// this node's; the health gauge is what this node knows of storage (the
// health index, health.go). No label carries a secret; per-handle labels
// only with config metrics_per_handle.

type metrics struct {
	reg      *prometheus.Registry
	upstream *prometheus.CounterVec   // kind, outcome
	latency  *prometheus.HistogramVec // kind
	cache    *prometheus.CounterVec   // result: hit, miss
	// hits and misses are cache's two series, looked up once: every
	// token read counts one.
	hits, misses prometheus.Counter
	background   prometheus.Counter
	rotations    prometheus.Counter
	webhooks     *prometheus.CounterVec // outcome: delivered, failed
	perHandle    *prometheus.CounterVec // handle, outcome (metrics_per_handle)
}

func newMetrics(b *backend) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcred_upstream_requests_total",
			Help: "Token requests to providers, by kind and outcome (ok, transient, reauth, config).",
		}, []string{"kind", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flowcred_refresh_duration_seconds",
			Help:    "Time a grant took at the provider, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"kind"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcred_token_reads_total",
			Help: "Token reads, by result: hit (served from the cache) or miss (waited for the handle's lock).",
		}, []string{"result"}),
		background: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowcred_background_refreshes_total",
			Help: "Handles the background scheduler checked ahead of expiry (each refreshes when due).",
		}),
		rotations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowcred_rotations_stored_total",
			Help: "Refresh tokens rotated by a provider (or obtained by connecting) and stored.",
		}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcred_webhook_deliveries_total",
			Help: "Webhook delivery attempts, by outcome (delivered, failed).",
		}, []string{"outcome"}),
		perHandle: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcred_handle_upstream_requests_total",
			Help: "Token requests by handle and outcome (only with config metrics_per_handle).",
		}, []string{"handle", "outcome"}),
	}
	m.hits, m.misses = m.cache.WithLabelValues("hit"), m.cache.WithLabelValues("miss")
	health := prometheus.NewDesc("flowcred_bindings", "Bindings by health, from the health index.", []string{"health"}, nil)
	m.reg.MustRegister(m.upstream, m.latency, m.cache, m.background, m.rotations, m.webhooks, m.perHandle,
		gaugeFunc{desc: health, collect: func(ch chan<- prometheus.Metric) {
			for h, n := range b.health.countsNow() {
				ch <- prometheus.MustNewConstMetric(health, prometheus.GaugeValue, float64(n), h)
			}
		}})
	return m
}

// outcomeOf is the upstream outcome label of each failure class.
var outcomeOf = map[errClass]string{classTransient: "transient", classReauth: "reauth", classConfig: "config"}

// gaugeFunc is a collector of gauges computed at scrape time.
type gaugeFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (g gaugeFunc) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }
func (g gaugeFunc) Collect(ch chan<- prometheus.Metric) { g.collect(ch) }

// grantDone counts a grant's outcome and latency.
func (b *backend) grantDone(handle, kind string, ue *upstreamError, took time.Duration, cfg *configEntry) {
	outcome := "ok"
	if ue != nil {
		outcome = outcomeOf[ue.class]
	}
	b.metrics.upstream.WithLabelValues(kind, outcome).Inc()
	b.metrics.latency.WithLabelValues(kind).Observe(took.Seconds())
	if cfg.MetricsPerHandle {
		b.metrics.perHandle.WithLabelValues(handle, outcome).Inc()
	}
}

// exposition renders the metrics in the text format, version 0.0.4.
func (m *metrics) exposition() ([]byte, error) {
	mfs, err := m.reg.Gather()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}
