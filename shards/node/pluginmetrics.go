package node

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// pluginCollector reports the node's plugins, labelled plugin=<name> and
// version=<n>, read at scrape time.
type pluginCollector struct{ n *Node }

var (
	pluginLabels       = []string{"plugin", "version"}
	descPluginLoaded   = prometheus.NewDesc("wisp_plugin_loaded", "1 if the node has loaded the plugin version (active or kept for a rollback), 0 while loading or if it failed to load.", pluginLabels, nil)
	descPluginDegraded = prometheus.NewDesc("wisp_plugin_degraded", "1 while most of the plugin's recent calls failed, so the built-in policy decides.", pluginLabels, nil)
	descPluginCalls    = prometheus.NewDesc("wisp_plugin_calls_total", "Decisions asked of the plugin (eviction rounds, or writes for a ttl rule).", pluginLabels, nil)
	descPluginFallback = prometheus.NewDesc("wisp_plugin_fallbacks_total", "Calls the plugin failed (timeout, trap, bad answer), decided by the built-in instead.", pluginLabels, nil)
	descPluginP99      = prometheus.NewDesc("wisp_plugin_call_p99_seconds", "99th percentile of the plugin's call time over its last few thousand calls.", pluginLabels, nil)
)

func (pluginCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPluginLoaded, descPluginDegraded, descPluginCalls, descPluginFallback, descPluginP99} {
		ch <- d
	}
}

func (c pluginCollector) Collect(ch chan<- prometheus.Metric) {
	if c.n.plugins == nil {
		return
	}
	for _, st := range c.n.plugins.states() {
		labels := []string{st.name, strconv.Itoa(st.version)}
		one := func(b bool) float64 {
			if b {
				return 1
			}
			return 0
		}
		ch <- prometheus.MustNewConstMetric(descPluginLoaded, prometheus.GaugeValue, one(st.state == pluginLoaded || st.state == pluginDegraded), labels...)
		ch <- prometheus.MustNewConstMetric(descPluginDegraded, prometheus.GaugeValue, one(st.state == pluginDegraded), labels...)
		ch <- prometheus.MustNewConstMetric(descPluginCalls, prometheus.CounterValue, float64(st.calls), labels...)
		ch <- prometheus.MustNewConstMetric(descPluginFallback, prometheus.CounterValue, float64(st.fallbacks), labels...)
		ch <- prometheus.MustNewConstMetric(descPluginP99, prometheus.GaugeValue, st.p99.Seconds(), labels...)
	}
}
