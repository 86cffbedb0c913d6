package webhooks

import (
	"context"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"
)

// Metrics are the webhooks' Prometheus series: attempts (Sender), outcomes
// (Dispatcher) and relays; nil counts nothing.
type Metrics struct {
	deliveries *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	relays     prometheus.Counter
	// ok and succeeded are the series of a successful attempt, looked up
	// once (at the first, so they appear as before): WithLabelValues
	// hashes its labels on every call.
	ok        func() prometheus.Observer
	succeeded func() prometheus.Counter
}

// NewMetrics registers the series on reg, with gauges for queue depth (asynq)
// and lag (the oldest due delivery in Postgres).
func NewMetrics(reg prometheus.Registerer, db *gorm.DB, inspector *asynq.Inspector) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plugboard_webhook_deliveries_total",
			Help: "Delivery outcomes after each attempt: succeeded, failed (gave up), pending (will retry)."}, []string{"outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plugboard_webhook_attempt_duration_seconds",
			Help: "Webhook attempt latency by error class (\"\" for success).", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}, []string{"error_class"}),
		relays: prometheus.NewCounter(prometheus.CounterOpts{Name: "plugboard_webhook_relayed_total",
			Help: "Deliveries the relay enqueued again."}),
	}
	m.ok = sync.OnceValue(func() prometheus.Observer { return m.latency.WithLabelValues("") })
	m.succeeded = sync.OnceValue(func() prometheus.Counter { return m.deliveries.WithLabelValues(DeliverySucceeded) })
	reg.MustRegister(m.deliveries, m.latency, m.relays)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "plugboard_webhook_queue_depth",
		Help: "Tasks waiting in the webhooks queue (pending and scheduled)."}, func() float64 {
		q, err := inspector.GetQueueInfo(QueueWebhooks)
		if err != nil {
			return 0
		}
		return float64(q.Pending + q.Scheduled + q.Retry)
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "plugboard_webhook_lag_seconds",
		Help: "How long the oldest due delivery has waited."}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var lag float64
		db.WithContext(ctx).Raw(`SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(d.next_attempt_at)), 0) FROM (
			SELECT d.next_attempt_at FROM apps a CROSS JOIN LATERAL (
				SELECT next_attempt_at FROM delivery_queue WHERE app_id = a.id AND status = 'pending' AND next_attempt_at <= now()
				ORDER BY next_attempt_at LIMIT 1) d
			UNION ALL
			SELECT d.next_attempt_at FROM host_endpoints h CROSS JOIN LATERAL (
				SELECT next_attempt_at FROM delivery_queue WHERE host_endpoint_id = h.id AND status = 'pending' AND next_attempt_at <= now()
				ORDER BY next_attempt_at LIMIT 1) d) d`).Scan(&lag)
		return lag
	}))
	return m
}

func (m *Metrics) attempt(class string, d time.Duration) {
	switch {
	case m == nil:
	case class == "":
		m.ok().Observe(d.Seconds())
	default:
		m.latency.WithLabelValues(class).Observe(d.Seconds())
	}
}

func (m *Metrics) delivery(outcome string) {
	switch {
	case m == nil:
	case outcome == DeliverySucceeded:
		m.succeeded().Inc()
	default:
		m.deliveries.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) relayed(n int) {
	if m != nil {
		m.relays.Add(float64(n))
	}
}
