package reclaim

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	reg        prometheus.Registerer
	expired    prometheus.Counter
	evicted    prometheus.Counter
	lag        prometheus.Histogram
	overBudget prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reg: reg,
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wisp_expired_keys_total", Help: "Keys removed by active expiry (Expire entries proposed by this leader).",
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wisp_evicted_keys_total", Help: "Keys removed by eviction (Evict entries proposed by this leader).",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wisp_expiry_lag_seconds",
			Help:    "Delay from a key's expiry time to the apply of the Expire entry that removed it, on the leader.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14), // 5ms .. ~41s
		}),
		overBudget: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wisp_memory_over_budget_bytes", Help: "Accounted memory minus the budget at the last eviction check (negative: under).",
		}),
	}
	if reg != nil {
		for _, c := range m.collectors() {
			_ = reg.Register(c)
		}
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.expired, m.evicted, m.lag, m.overBudget}
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors() {
		m.reg.Unregister(c)
	}
}
