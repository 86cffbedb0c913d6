package web

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Services are the domain services handlers call.
type Services struct{}

// routes is the one map of every path the server answers.
func (s *Server) routes() {
	e := s.e
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if s.opts.Registry != nil {
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{})))
	}
	if s.opts.Queues != nil {
		e.Any("/admin/queues*", echo.WrapHandler(s.opts.Queues), s.queuesGuard)
	}
	e.GET("/", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"name": "Plugboard", "version": s.opts.Version, "api": "/api/0/"})
	})
}

// queuesGuard keeps the asynq monitoring UI to development until operator
// sign-in exists.
func (s *Server) queuesGuard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.opts.Env != "development" {
			return echo.ErrNotFound
		}
		return next(c)
	}
}
