package registry

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the middleware's Prometheus metrics, on a registry of their
// own (several servers may live in one test process); /metrics serves them
// with the process's default ones (Go runtime, and distribution's when
// Config.DistributionMetrics is on).
type metrics struct {
	log          *slog.Logger
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	authFailures prometheus.Counter
}

func newMetrics(log *slog.Logger) *metrics {
	m := &metrics{
		log: log,
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "registry", Name: "requests_total",
			Help: "Registry requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "ferry", Subsystem: "registry", Name: "request_duration_seconds",
			Help: "Registry request latency by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"route"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ferry", Subsystem: "registry", Name: "auth_failures_total",
			Help: "Requests refused for missing or invalid credentials.",
		}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.authFailures)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(prometheus.Gatherers{prometheus.DefaultGatherer, m.reg}, promhttp.HandlerOpts{})
}

// statusRecorder remembers the status code for the metrics.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// ReadFrom keeps the connection's sendfile path for blob downloads.
func (s *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	if rf, ok := s.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(s.ResponseWriter, src)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (m *metrics) observe(w http.ResponseWriter, r *http.Request, route string, h http.Handler) {
	if route == "" {
		route = "unknown"
	}
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	h.ServeHTTP(rec, r)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	if rec.code >= 500 {
		m.log.Error("registry request failed", "method", r.Method, "route", route, "status", rec.code)
	}
	m.requests.WithLabelValues(route, r.Method, strconv.Itoa(rec.code)).Inc()
	m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}
