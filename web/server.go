// Package web is Plugboard's HTTP layer: the echo server and its middleware,
// the JSON API under /api/0, the OAuth endpoints, the HTML UI and the OpenAPI
// document. routes.go is the one map of every path; handlers decode, call
// one marketplace service, and encode; each page gets its data from one
// read-model call; every error is rendered by one handler (errors.go).
//
// web imports marketplace, webhooks (for its types), config and the app/
// kernel (fault, page); only the composition root, cmd/platform, imports
// web.
package web

import (
	"context"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
)

// Check reports whether a dependency answers; readiness runs each.
type Check struct {
	Name string
	Ping func(context.Context) error
}

// Options are the server's dependencies, built by app.
type Options struct {
	Logger    *slog.Logger
	Env       string
	BaseURL   string
	BodyLimit int64
	Version   string
	Checks    []Check
	Registry  *prometheus.Registry
	// Queues is the asynq monitoring UI, mounted at /admin/queues.
	Queues http.Handler
	// CursorKey signs pagination cursors; every API process must share it
	// (app derives it from PLUGBOARD_SECRET_KEY). Without one, a random key
	// is used: cursors then last as long as the process.
	CursorKey []byte
	// Limiter counts requests against RateLimits (nil: no limits, no
	// RateLimit headers).
	Limiter    *Limiter
	RateLimits RateLimits
	// The domain services handlers call.
	*marketplace.Services
}

// Server is the HTTP handler of the platform.
type Server struct {
	// notReady is what the last readiness probe found down (a string, ""
	// for none).
	notReady atomic.Value

	opts    Options
	log     *slog.Logger
	e       *echo.Echo
	streams streams
	pages   templates
	once    *oneTime // secrets the UI shows once, after a redirect
	cursors page.Codec
}

// New builds the echo server with its middleware and routes.
func New(opts Options) *Server {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	s := &Server{opts: opts, log: opts.Logger, e: e, once: newOneTime(), cursors: newCursorCodec(opts.CursorKey)}
	s.pages = parseTemplates(template.FuncMap{"cursor": s.cursors.Encode})
	e.HTTPErrorHandler = s.handleError
	e.JSONSerializer = jsonSerializer{}

	// Paths under /api/0/ end with a slash; one without it is answered the same.
	e.Pre(middleware.AddTrailingSlashWithConfig(middleware.TrailingSlashConfig{
		Skipper: func(c echo.Context) bool {
			p := c.Request().URL.Path
			return !strings.HasPrefix(p, "/api/0/") || strings.HasSuffix(p, ".json")
		},
	}))
	e.Use(middleware.RequestIDWithConfig(middleware.RequestIDConfig{
		Generator: func() string { return uuid.NewString() },
		RequestIDHandler: func(c echo.Context, id string) {
			c.Set(ctxRequestID, id)
		},
	}))
	e.Use(s.accessLog())
	e.Use(s.apiUnrouted)
	e.Use(s.securityHeaders())
	if opts.Registry != nil {
		e.Use(newHTTPMetrics(opts.Registry).middleware)
	}
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.Error("panic", "requestId", requestID(c), "err", err, "stack", string(stack))
			return err
		},
	}))
	if opts.BodyLimit > 0 {
		e.Use(bodyLimit(opts.BodyLimit))
	}
	e.Use(s.refuseBadText) // after routing: it names path parameters
	s.routes()
	return s
}

// ServeHTTP makes Server an http.Handler.
// HEAD is answered as GET without the body (routes.go).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		s.serveHead(w, r)
		return
	}
	s.e.ServeHTTP(w, r)
}

// Echo exposes the router to tests that list routes.
func (s *Server) Echo() *echo.Echo { return s.e }

const ctxRequestID = "requestId"

func requestID(c echo.Context) string {
	if id, ok := c.Get(ctxRequestID).(string); ok {
		return id
	}
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

// accessLog writes one structured line per request.
func (s *Server) accessLog() echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		HandleError: true, LogStatus: true, LogURI: true, LogMethod: true, LogLatency: true, LogRequestID: true, LogRemoteIP: true, LogError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			level := slog.LevelInfo
			if v.Status >= 500 {
				level = slog.LevelError
			}
			if v.Status == http.StatusServiceUnavailable && c.Response().Header().Get("Retry-After") != "" {
				level = slog.LevelWarn // shedding load, or a dependency away: said, not a failure of ours
			}
			if v.URI == "/healthz" || v.URI == "/readyz" || v.URI == "/metrics" {
				level = slog.LevelDebug
			}
			method := v.Method
			if isHead(c) {
				method = http.MethodHead
			}
			s.log.LogAttrs(c.Request().Context(), level, "request",
				slog.String("method", method), slog.String("uri", redactURI(v.URI)), slog.Int("status", v.Status),
				slog.Duration("latency", v.Latency), slog.String("requestId", v.RequestID), slog.String("ip", v.RemoteIP))
			return nil
		},
	})
}

// sensitiveParams are query parameters whose values are credentials: the
// access log writes them as REDACTED.
var sensitiveParams = map[string]bool{"client_secret": true, "code": true, "refresh_token": true, "token": true,
	"password": true, "access_token": true, "code_verifier": true}

// redactURI replaces the values of sensitive query parameters in a request
// URI, leaving the rest as it was sent.
func redactURI(uri string) string {
	path, query, ok := strings.Cut(uri, "?")
	if !ok {
		return uri
	}
	pairs := strings.Split(query, "&")
	for i, p := range pairs {
		k, _, _ := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if sensitiveParams[strings.ToLower(name)] {
			pairs[i] = k + "=REDACTED"
		}
	}
	return path + "?" + strings.Join(pairs, "&")
}

// bodyLimit refuses bodies over n bytes with 413, both when Content-Length
// says so and when the body turns out longer while read.
func bodyLimit(n int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.ContentLength > n {
				return errTooLarge
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, n)
			return next(c)
		}
	}
}

var errTooLarge = echo.NewHTTPError(http.StatusRequestEntityTooLarge, "The request body is larger than this server accepts.")

// healthz answers while the process runs.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when every dependency answers within a second, else 503
// with a problem document naming what is down.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), time.Second)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(s.opts.Checks))
	for _, ch := range s.opts.Checks {
		go func() { results <- result{ch.Name, ch.Ping(ctx)} }()
	}
	status := map[string]string{}
	var down, errs []string
	for range s.opts.Checks {
		r := <-results
		if r.err != nil {
			status[r.name] = "down"
			down = append(down, r.name)
			errs = append(errs, r.name+": "+r.err.Error())
		} else {
			status[r.name] = "ok"
		}
	}
	sort.Strings(down)
	// Probes ask every few seconds: the log says when readiness changes,
	// not each time it is asked.
	now := strings.Join(down, ",")
	if old, _ := s.notReady.Swap(now).(string); old != now {
		if now == "" {
			s.log.Info("ready again")
		} else {
			s.log.Warn("not ready", "down", now, "err", strings.Join(errs, "; "))
		}
	}
	if len(down) > 0 {
		return &fault.Error{Kind: fault.KindUnavailable, Code: fault.NotReady,
			Message: "Not ready: " + strings.Join(down, ", ") + " unreachable.", Details: map[string]any{"checks": status}}
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "ok", "checks": status})
}
