package plugboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// DefaultMaxBodySize is the largest webhook body Handler reads.
const DefaultMaxBodySize = 1 << 20

// HandlerOption configures Handler.
type HandlerOption func(*handlerConfig)

type handlerConfig struct {
	secrets   []string
	maxBody   int64
	tolerance time.Duration
	now       func() time.Time
	log       *slog.Logger
}

// WithSecrets adds signing secrets Handler accepts besides the first: while
// a secret rotates, Plugboard signs with both, and either verifies.
func WithSecrets(secrets ...string) HandlerOption {
	return func(c *handlerConfig) { c.secrets = append(c.secrets, secrets...) }
}

// WithMaxBodySize sets the largest body Handler reads (DefaultMaxBodySize
// by default); larger requests are answered 413.
func WithMaxBodySize(n int64) HandlerOption {
	return func(c *handlerConfig) { c.maxBody = n }
}

// WithTolerance sets how far a webhook's timestamp may be from the clock
// (DefaultTolerance by default).
func WithTolerance(d time.Duration) HandlerOption {
	return func(c *handlerConfig) { c.tolerance = d }
}

// WithClock sets the clock timestamps are checked against; for tests.
func WithClock(now func() time.Time) HandlerOption {
	return func(c *handlerConfig) { c.now = now }
}

// WithLogger logs why requests were refused and the errors fn returned
// (at warn and error level). By default nothing is logged.
func WithLogger(l *slog.Logger) HandlerOption {
	return func(c *handlerConfig) { c.log = l }
}

// Handler returns the http.Handler of an app's webhook URL. For each POST
// it reads the body (up to a size cap), verifies the signature with secret
// (and any WithSecrets), decodes the envelope and calls fn with the
// request's context. It answers:
//
//   - 204 No Content when fn returns nil;
//   - 401 when the signature or timestamp does not verify;
//   - 400 when the body is not an envelope;
//   - 413 when the body is too large, 405 for a method other than POST;
//   - 500 when fn returns an error, so Plugboard retries later.
//
// Plugboard delivers at least once: a retry or a redelivery carries the
// same Event.ID, which fn can drop duplicates by. fn should be quick; a slow
// answer times out and is retried.
//
// Handler panics if a secret is not a whsec_ secret, as a misconfiguration
// found at start-up rather than on the first delivery.
func Handler(secret string, fn func(ctx context.Context, ev *Event) error, opts ...HandlerOption) http.Handler {
	cfg, v := newHandlerConfig(secret, opts)
	return &webhookHandler{v: v, fn: fn, maxBody: cfg.maxBody, log: cfg.log}
}

// newHandlerConfig applies opts and builds the verifier both handlers
// check requests with; it panics on a secret that is not whsec_.
func newHandlerConfig(secret string, opts []HandlerOption) (handlerConfig, *Verifier) {
	cfg := handlerConfig{secrets: []string{secret}, maxBody: DefaultMaxBodySize}
	for _, o := range opts {
		o(&cfg)
	}
	v, err := NewVerifier(cfg.secrets...)
	if err != nil {
		panic(err)
	}
	v.Tolerance, v.Now = cfg.tolerance, cfg.now
	if cfg.maxBody <= 0 {
		cfg.maxBody = DefaultMaxBodySize
	}
	return cfg, v
}

type webhookHandler struct {
	v       *Verifier
	fn      func(context.Context, *Event) error
	maxBody int64
	log     *slog.Logger
}

func (h *webhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.refuse(w, r, http.StatusMethodNotAllowed, "webhooks are POSTed", nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", h.maxBody), err)
			return
		}
		h.refuse(w, r, http.StatusBadRequest, "the body could not be read", err)
		return
	}
	if err := h.v.Verify(r.Header, body); err != nil {
		h.refuse(w, r, http.StatusUnauthorized, err.Error(), err)
		return
	}
	ev, err := ParseEvent(body)
	if err != nil {
		h.refuse(w, r, http.StatusBadRequest, err.Error(), err)
		return
	}
	if err := h.fn(r.Context(), ev); err != nil {
		if h.log != nil {
			h.log.ErrorContext(r.Context(), "plugboard: webhook handler failed; Plugboard will retry",
				"event", ev.Type, "webhook_id", ev.ID, "installation", ev.InstallationUUID(), "err", err)
		}
		// The body shows in the app's delivery log; the error itself may
		// hold internals, so it goes to the logger only.
		http.Error(w, "the webhook handler failed; it will be retried", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *webhookHandler) refuse(w http.ResponseWriter, r *http.Request, status int, msg string, err error) {
	if h.log != nil {
		h.log.WarnContext(r.Context(), "plugboard: webhook refused", "status", status, "webhook_id", r.Header.Get(HeaderWebhookID), "err", err)
	}
	http.Error(w, msg, status)
}
