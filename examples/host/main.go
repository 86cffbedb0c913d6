// Command host is an example host product: the SaaS that runs Plugboard
// as its marketplace, with an API of its own that partners call with the
// installation tokens Plugboard gives them. Its one API route,
// GET /api/issues, is wrapped in the SDK's RequireScopes: each request's
// Bearer token is introspected at Plugboard (RFC 7662, with the host's
// service token), refused unless it is active and carries issue:read,
// and answered with the issues of the token's organization only. Run it
// beside `make run`:
//
//	PLUGBOARD_URL=http://localhost:8080 SERVICE_TOKEN=pbh_… go run ./examples/host
//
// with ISSUES set to a JSON object of issues per Plugboard organization
// id (`{"1": [{"id": "1", "title": "Login fails"}]}`), or leave it out for
// a sample for organizations 1 and 2. The scope is the host's: an event
// type declares it (`plugboard event-types create --demo` makes
// issue.created with scope issue:read), apps ask for it, and
// organizations grant it when they install; docs/guides/host-api.md shows
// the same check in plain HTTP.
//
// Of Plugboard it imports only the SDK, as the host's own service would;
// nothing imports it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	plugboard "github.com/plugboard/plugboard/sdk/plugboard"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, slog.Default()); err != nil {
		fmt.Fprintln(os.Stderr, "host:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string, log *slog.Logger) error {
	cfg := Config{PlugboardURL: getenv("PLUGBOARD_URL"), ServiceToken: getenv("SERVICE_TOKEN"), Issues: sampleIssues}
	if cfg.PlugboardURL == "" {
		cfg.PlugboardURL = "http://localhost:8080"
	}
	if cfg.ServiceToken == "" {
		return errors.New("set SERVICE_TOKEN to a host service token (an operator makes one: POST /api/0/service-tokens/)")
	}
	if raw := getenv("ISSUES"); raw != "" {
		cfg.Issues = nil
		if err := json.Unmarshal([]byte(raw), &cfg.Issues); err != nil {
			return fmt.Errorf("ISSUES is not a JSON object of issues per organization id: %w", err)
		}
	}
	addr := getenv("ADDR")
	if addr == "" {
		addr = ":3001"
	}
	srv := &http.Server{Addr: addr, Handler: New(cfg, log), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("host listening", "addr", addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Issue is the host's own data, which partners read.
type Issue struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Status string `json:"status"`
}

// sampleIssues are the issues of organizations 1 and 2, for trying it.
var sampleIssues = map[string][]Issue{
	"1": {{ID: "101", Title: "Checkout times out", Status: "open"}, {ID: "102", Title: "Typo on the pricing page", Status: "resolved"}},
	"2": {{ID: "201", Title: "Exports are empty", Status: "open"}},
}

// Config is what the host needs to check installation tokens.
type Config struct {
	PlugboardURL string
	ServiceToken string // pbh_…
	// Issues are each organization's, by its Plugboard id: the id, not
	// the slug, which an organization may change.
	Issues map[string][]Issue
}

// New returns the host's HTTP handler.
func New(cfg Config, log *slog.Logger) http.Handler {
	in := plugboard.NewIntrospector(cfg.PlugboardURL, cfg.ServiceToken)
	in.Logger = log
	mux := http.NewServeMux()
	mux.Handle("GET /api/issues", plugboard.RequireScopes(in, "issue:read")(issues(cfg.Issues)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}

// issues answers the calling organization's issues, and only theirs: the
// organization comes from the token's introspection, never from the
// request, so no parameter can name another.
func issues(all map[string][]Issue) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, _ := plugboard.IntrospectionFrom(r.Context())
		mine := all[t.Organization.ID]
		if mine == nil {
			mine = []Issue{}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"organization": t.Organization.Slug, "issues": mine})
	})
}
