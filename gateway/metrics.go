// metrics.go: the Prometheus metrics of the status page (?openmetrics): per-request
// histograms and counters kept by the gateway, and the pool's numbers collected from the
// StatusSource at each scrape. Everything lives in the gateway's own registry; the
// request path only adds to atomic counters and histograms.

package gateway

import (
	"bytes"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// Histogram buckets, in seconds.
var (
	durationBuckets  = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	queueWaitBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
)

// Refusal causes: why a request got the gateway's 503.
const (
	refusedQueueFull = iota
	refusedQueueTimeout
	refusedClosing
	numRefusals
)

var refusalNames = []string{"queue_full", "queue_timeout", "shutting_down"}

// metrics is a gateway's registry and the per-request metrics it records itself.
type metrics struct {
	reg       *prometheus.Registry
	duration  prometheus.Histogram
	queueWait prometheus.Histogram
	byClass   [6]prometheus.Counter // index status/100; [0] unused
	refused   [numRefusals]prometheus.Counter
	cancelled prometheus.Counter
	// serverRefused: the requests the FastCGI server refused, by cause (serverrefusal.go).
	serverRefused [numServerRefusals]prometheus.Counter
}

// newMetrics builds the registry of a gateway whose pool is src: the request metrics, the
// pool's collector, and the gateway process's own (RSS, CPU, descriptors).
func newMetrics(g *Gateway, src StatusSource) *metrics {
	pool := prometheus.Labels{"pool": g.opts.PoolName}
	m := &metrics{reg: prometheus.NewRegistry()}
	m.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "wsgi_fcgi_request_duration_seconds", ConstLabels: pool, Buckets: durationBuckets,
		Help: "Time from the start of a request's wait (its arrival, or X-Request-Start) to its last byte."})
	m.queueWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "wsgi_fcgi_queue_wait_seconds", ConstLabels: pool, Buckets: queueWaitBuckets,
		Help: "Time from the start of a request's wait to a worker starting it (to its refusal, for one refused)."})
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsgi_fcgi_requests_total", ConstLabels: pool,
		Help: "Requests answered, by status class (499: the web server went away)."}, []string{"code"})
	for c := 1; c <= 5; c++ {
		m.byClass[c] = requests.WithLabelValues(strconv.Itoa(c) + "xx")
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsgi_fcgi_refused_requests_total", ConstLabels: pool,
		Help: "Requests answered 503 by the gateway, by cause."}, []string{"cause"})
	for i, name := range refusalNames {
		m.refused[i] = refused.WithLabelValues(name)
	}
	m.cancelled = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wsgi_fcgi_cancelled_requests_total", ConstLabels: pool,
		Help: "Requests the web server gave up on before their response was complete."})
	serverRefused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsgi_fcgi_fastcgi_refused_total", ConstLabels: pool,
		Help: "Requests the FastCGI server turned away before the gateway saw them, by cause (FCGI_OVERLOADED, FCGI_CANT_MPX_CONN, FCGI_UNKNOWN_ROLE, 431), and bodies cut over --max-spool."}, []string{"cause"})
	for i, name := range serverRefusalNames {
		m.serverRefused[i] = serverRefused.WithLabelValues(name)
	}
	m.reg.MustRegister(m.duration, m.queueWait, requests, refused, m.cancelled, serverRefused,
		&poolCollector{g: g, src: src, pool: g.opts.PoolName},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "wsgi_fcgi_gateway"}))
	return m
}

// observe records a request the gateway answered with status (0: nothing was sent).
func (m *metrics) observe(e *accessEntry, cancelled bool) {
	if c := e.status / 100; c >= 1 && c <= 5 {
		m.byClass[c].Inc()
	}
	if cancelled {
		m.cancelled.Inc()
	}
	m.duration.Observe(e.total.Seconds())
	if e.hasQueue {
		m.queueWait.Observe(e.queueWait.Seconds())
	}
}

// metricsFormat picks the exposition format for a scrape with the given Accept header:
// OpenMetrics unless plain Prometheus text is what is asked for.
func metricsFormat(accept []byte) expfmt.Format {
	if len(accept) == 0 {
		return expfmt.FmtOpenMetrics_1_0_0
	}
	return expfmt.NegotiateAccept(http.Header{"Accept": {string(accept)}},
		expfmt.FmtOpenMetrics_1_0_0, expfmt.FmtOpenMetrics_0_0_1, expfmt.FmtText)
}

// metricsBody gathers the registry and encodes it in format.
func (m *metrics) metricsBody(format expfmt.Format) ([]byte, error) {
	families, err := m.reg.Gather()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, format)
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return nil, err
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil { // OpenMetrics' "# EOF"
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// poolCollector reads the pool's numbers at each scrape.
type poolCollector struct {
	g    *Gateway
	src  StatusSource
	pool string
}

// Descriptions of the pool's metrics; the pool label is constant.
var (
	descUp          = poolDesc("up", "Whether the pool answered.")
	descStartTime   = poolDesc("start_time_seconds", "When the gateway started, in Unix seconds.")
	descAccepted    = poolDesc("accepted_connections_total", "Requests accepted.")
	descListenQueue = poolDesc("listen_queue", "Requests waiting for a free worker.")
	descMaxQueue    = poolDesc("max_listen_queue", "Most requests ever waiting for a free worker.")
	descQueueLen    = poolDesc("listen_queue_length", "Size of the queue of requests waiting for a worker.")
	descIdle        = poolDesc("idle_processes", "Idle workers.")
	descActive      = poolDesc("active_processes", "Workers serving a request.")
	descTotal       = poolDesc("total_processes", "Workers, idle and active.")
	descMaxActive   = poolDesc("max_active_processes", "Most workers ever active at once.")
	descMaxChildren = poolDesc("max_children_reached_total", "Times a request found every worker busy at the maximum.")
	descSlow        = poolDesc("slow_requests_total", "Requests that passed the slow-request threshold.")
	descMemoryPeak  = poolDesc("memory_peak_bytes", "Highest peak resident memory of any worker seen.")
	descWorkers     = poolDesc("workers", "Workers (threads) by state.", "state")
	descTimeouts    = poolDesc("timeouts_total", "Requests stopped by --timeout (hard: the worker killed) or --soft-timeout (soft).", "kind")
	descExits       = poolDesc("worker_exits_total", "Worker processes that ended, by cause.", "cause")
	descReloads     = poolDesc("reloads_total", "Reloads that took effect.")
	descFailed      = poolDesc("failed_reloads_total", "Reloads that failed: the old workers kept serving.")
	descRSS         = poolDesc("worker_resident_memory_bytes", "Resident memory of each worker process.", "pid")
	descMaxRSS      = poolDesc("worker_max_rss_bytes", "The --max-rss limit a worker is recycled past (0: none).")
)

func poolDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("wsgi_fcgi_"+name, help, append([]string{"pool"}, labels...), nil)
}

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descStartTime, descAccepted, descListenQueue, descMaxQueue,
		descQueueLen, descIdle, descActive, descTotal, descMaxActive, descMaxChildren, descSlow, descMemoryPeak,
		descWorkers, descTimeouts, descExits, descReloads, descFailed, descRSS, descMaxRSS} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one snapshot of the pool, with its workers' RSS.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Status(true)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{c.pool}, labels...)...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{c.pool}, labels...)...)
	}
	gauge(descUp, 1)
	gauge(descStartTime, float64(c.g.started.Unix()))
	counter(descAccepted, c.g.accepted.Load())
	gauge(descListenQueue, float64(s.ListenQueue))
	gauge(descMaxQueue, float64(s.MaxListenQueue))
	gauge(descQueueLen, float64(s.ListenQueueLen))
	gauge(descIdle, float64(s.IdleProcesses))
	gauge(descActive, float64(s.ActiveProcesses))
	gauge(descTotal, float64(s.TotalProcesses))
	gauge(descMaxActive, float64(s.MaxActiveProcesses))
	counter(descMaxChildren, s.MaxChildrenReached)
	counter(descSlow, s.SlowRequests)
	gauge(descMemoryPeak, float64(s.MemoryPeak))
	gauge(descWorkers, float64(s.IdleProcesses), "idle")
	gauge(descWorkers, float64(s.ActiveProcesses), "busy")
	gauge(descWorkers, float64(s.Starting), "starting")
	gauge(descWorkers, float64(s.Draining), "draining")
	counter(descTimeouts, s.HardTimeouts, "hard")
	counter(descTimeouts, s.SoftTimeouts, "soft")
	for _, e := range s.WorkerExits {
		counter(descExits, e.Count, e.Cause)
	}
	counter(descReloads, s.Reloads)
	counter(descFailed, s.FailedReloads)
	seen := map[int]bool{}
	for _, p := range s.Processes {
		if !seen[p.PID] { // one row per thread: one value per process
			seen[p.PID] = true
			gauge(descRSS, float64(p.RSS), strconv.Itoa(p.PID))
		}
	}
	gauge(descMaxRSS, float64(s.MaxRSS))
}

// statusMetrics answers the status page's ?openmetrics; accept is the request's Accept.
func (g *Gateway) statusMetrics(accept []byte) (ctype string, body []byte) {
	format := metricsFormat(accept)
	body, err := g.metrics.metricsBody(format)
	if err != nil {
		g.log.Error("metrics not gathered", "error", err)
		return "text/plain; charset=utf-8", []byte("# metrics not gathered: " + err.Error() + "\n")
	}
	return string(format), body
}
