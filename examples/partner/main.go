// Command partner is an example Plugboard partner app: a small web service
// that handles the install redirect, exchanges the install code with
// golang.org/x/oauth2, verifies webhooks with the Plugboard SDK, confirms
// installs, keeps its installations in memory, answers Plugboard's sync
// URL, signs members in to its dashboard when they click "Open" on
// Plugboard (single sign-on, the SDK's SSOVerifier), and is provisioned
// Heroku-style (provision.go, the SDK's ProvisionHandler): config vars,
// plan changes it may refuse, deprovisioning; and calls the host product's
// own API (host.go) with installation tokens it mints for itself (the
// SDK's AppTokenSource). Run it beside `make run`:
//
//	PLUGBOARD_URL=http://localhost:8080 CLIENT_ID=… CLIENT_SECRET=pbcs_… \
//	WEBHOOK_SECRET=whsec_… go run ./examples/partner
//
// and register the app with webhookUrl http://localhost:3000/webhooks,
// redirectUrl http://localhost:3000/setup, syncUrl http://localhost:3000/sync,
// ssoUrl http://localhost:3000/sso and provisionUrl
// http://localhost:3000/provision (CONFIG_PREFIX is the app's config prefix;
// PROVISION_ASYNC=true answers provisioning with 202 and finishes later;
// HOST_URL is the host's API, such as examples/host on
// http://localhost:3001).
//
// Of Plugboard it imports only the SDK, as a partner's service would;
// nothing imports it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	plugboard "github.com/plugboard/plugboard/sdk/plugboard"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := Config{
		PlugboardURL:  getenv("PLUGBOARD_URL", "http://localhost:8080"),
		ClientID:      os.Getenv("CLIENT_ID"),
		ClientSecret:  os.Getenv("CLIENT_SECRET"),
		WebhookSecret: os.Getenv("WEBHOOK_SECRET"),
		PublicURL:     getenv("PUBLIC_URL", "http://localhost:3000"),
		AppName:       getenv("APP_NAME", "Example Partner"),
		ConfigPrefix:  getenv("CONFIG_PREFIX", "EXAMPLE_PARTNER_"),
		HostURL:       os.Getenv("HOST_URL"),

		ProvisionAsync: os.Getenv("PROVISION_ASYNC") == "true",
		ProvisionDelay: 2 * time.Second,
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" || cfg.WebhookSecret == "" {
		fmt.Fprintln(os.Stderr, "partner: set CLIENT_ID, CLIENT_SECRET and WEBHOOK_SECRET (shown once when you create the app)")
		os.Exit(2)
	}
	srv := &http.Server{Addr: getenv("ADDR", ":3000"), Handler: New(cfg, slog.Default()), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	slog.Info("partner listening", "addr", srv.Addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "partner:", err)
		os.Exit(1)
	}
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Config is what the partner needs to know about its Plugboard app.
type Config struct {
	PlugboardURL  string
	ClientID      string
	ClientSecret  string
	WebhookSecret string
	PublicURL     string
	AppName       string
	// ConfigPrefix starts the config vars' names: the app's config prefix.
	ConfigPrefix string
	// ProvisionAsync answers provisioning with 202 and finishes after
	// ProvisionDelay, with the installation's token.
	ProvisionAsync bool
	ProvisionDelay time.Duration
	// HostURL is the host product's API, which GET /host-issues calls.
	HostURL string
}

// Account is the partner's record of one installation.
type Account struct {
	Installation string
	Org          string
	Token        *oauth2.Token
	Verified     bool
	Plan         string            // provisioned accounts: the plan's slug
	Vars         map[string]string // provisioned accounts: the config vars handed out
}

// Partner is the example service.
type Partner struct {
	cfg   Config
	log   *slog.Logger
	oauth *oauth2.Config
	mu    sync.Mutex
	acct  map[string]*Account // by installation uuid
	seen  map[string]bool     // webhook-ids handled: deliveries can repeat
	mux   *http.ServeMux
	// Single sign-on: the verifier of Plugboard's sign-on tokens, and the
	// dashboard's sessions it opens, by cookie value.
	sso      *plugboard.SSOVerifier
	sessions map[string]*plugboard.SSOClaims
	// deprovisioned are the installations Plugboard deprovisioned.
	deprovisioned []string
	// tokens mint and keep each installation's tokens for the host's API.
	tokens map[string]oauth2.TokenSource
}

// sessionCookie is the partner's own session, opened by a sign-on.
const sessionCookie = "partner_session"

// New returns the partner's HTTP handler.
func New(cfg Config, log *slog.Logger) *Partner {
	p := &Partner{cfg: cfg, log: log, acct: map[string]*Account{}, seen: map[string]bool{}, mux: http.NewServeMux(),
		oauth:    plugboard.OAuth2Config(cfg.PlugboardURL, cfg.ClientID, cfg.ClientSecret, cfg.PublicURL+"/setup"),
		sso:      plugboard.NewSSOVerifier(cfg.PlugboardURL, cfg.ClientID),
		sessions: map[string]*plugboard.SSOClaims{}, tokens: map[string]oauth2.TokenSource{}}
	p.mux.Handle("POST /webhooks", plugboard.Handler(cfg.WebhookSecret, p.webhook))
	p.mux.Handle("POST /sso", p.sso.Handler(p.signIn))
	prov := plugboard.ProvisionHandler(cfg.WebhookSecret, provisioner{p}, plugboard.WithLogger(log))
	p.mux.Handle("POST /provision", prov)
	p.mux.Handle("PUT /provision/{uuid}", prov)
	p.mux.Handle("DELETE /provision/{uuid}", prov)
	p.mux.HandleFunc("GET /dashboard", p.dashboard)
	p.mux.HandleFunc("GET /setup", p.setup)
	p.mux.HandleFunc("GET /sync", p.sync)
	p.mux.HandleFunc("GET /host-issues", p.hostIssues)
	p.mux.HandleFunc("GET /{$}", p.home)
	return p
}

// Accounts returns a copy of what the partner knows.
func (p *Partner) Accounts() []Account {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Account
	for _, a := range p.acct {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Installation < out[j].Installation })
	return out
}

func (p *Partner) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

// webhook handles Plugboard's events. Returning an error answers 500, and
// Plugboard retries.
func (p *Partner) webhook(ctx context.Context, ev *plugboard.Event) error {
	p.mu.Lock()
	dup := p.seen[ev.ID]
	p.seen[ev.ID] = true
	p.mu.Unlock()
	if dup {
		return nil // at least once: the same webhook-id again
	}
	switch ev.Type {
	case plugboard.EventInstallationCreated:
		created, err := ev.InstallationCreated()
		if err != nil {
			return err
		}
		p.mu.Lock()
		_, provisioned := p.acct[ev.InstallationUUID()]
		p.mu.Unlock()
		if provisioned {
			// Provisioning exchanged the code already: a second exchange
			// would be a reused code, which revokes the tokens it gave.
			return nil
		}
		if err := p.connect(ctx, created); err != nil {
			p.mu.Lock()
			delete(p.seen, ev.ID) // let the retry try again
			p.mu.Unlock()
			return err
		}
	case plugboard.EventInstallationDeleted:
		p.mu.Lock()
		delete(p.acct, ev.InstallationUUID())
		delete(p.tokens, ev.InstallationUUID())
		p.mu.Unlock()
		p.log.Info("uninstalled", "installation", ev.InstallationUUID())
	}
	return nil
}

// connect exchanges the install code, then confirms the install.
func (p *Partner) connect(ctx context.Context, created *plugboard.InstallationCreated) error {
	tok, err := p.oauth.Exchange(ctx, created.Code)
	if err != nil {
		return fmt.Errorf("exchanging the code: %w", err)
	}
	id := plugboard.InstallationID(tok)
	acct := &Account{Installation: id, Org: created.Installation.Organization.Slug, Token: tok}
	p.mu.Lock()
	p.acct[id] = acct
	p.mu.Unlock()
	client, err := plugboard.NewClient(p.cfg.PlugboardURL, plugboard.WithTokenSource(p.oauth.TokenSource(ctx, tok)))
	if err != nil {
		return err
	}
	if _, err := client.VerifyInstallation(ctx, id, "acct_"+created.Installation.Organization.Slug, p.cfg.PublicURL+"/"); err != nil {
		return fmt.Errorf("confirming the install: %w", err)
	}
	p.mu.Lock()
	acct.Verified = true
	p.mu.Unlock()
	p.log.Info("installed", "installation", id, "org", acct.Org)
	return nil
}

// setup is the redirect URL: the browser lands here after installing.
func (p *Partner) setup(w http.ResponseWriter, r *http.Request) {
	id, org := r.URL.Query().Get("installationId"), r.URL.Query().Get("orgSlug")
	if id == "" {
		http.Error(w, "missing installationId", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	setupPage.Execute(w, map[string]string{"Org": org, "Installation": id})
}

var setupPage = template.Must(template.New("setup").Parse(`<!doctype html><title>Connected</title>
<h1>Thanks for installing, {{.Org}}!</h1><p>Installation {{.Installation}} is being connected; it is ready in a moment.</p>`))

// sync answers Plugboard's reconciliation: which installations we know.
func (p *Partner) sync(w http.ResponseWriter, r *http.Request) {
	if err := plugboard.Verify(p.cfg.WebhookSecret, r.Header, nil); err != nil {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	ids := []string{}
	for _, a := range p.Accounts() {
		ids = append(ids, a.Installation)
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"installations": %s, "nextCursor": ""}`, jsonList(ids))
}

func jsonList(ids []string) string {
	s := "["
	for i, id := range ids {
		if i > 0 {
			s += ","
		}
		s += `"` + id + `"`
	}
	return s + "]"
}

func (p *Partner) home(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, a := range p.Accounts() {
		fmt.Fprintf(w, "%s  %s  verified=%t\n", a.Installation, a.Org, a.Verified)
	}
}

// signIn is the ssoUrl's answer once the SDK has verified the token: the
// partner opens its own session and shows its dashboard.
func (p *Partner) signIn(w http.ResponseWriter, r *http.Request, c *plugboard.SSOClaims) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		http.Error(w, "cannot start a session", http.StatusInternalServerError)
		return
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	p.mu.Lock()
	p.sessions[id] = c
	p.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: r.TLS != nil, MaxAge: 8 * 3600})
	p.log.Info("signed in from Plugboard", "user", c.UserID, "org", c.Org, "installation", c.Installation)
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

// Session returns who the session cookie of r signed in, nil for nobody.
func (p *Partner) Session(r *http.Request) *plugboard.SSOClaims {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sessions[ck.Value]
}

// dashboard is the partner's own page for a signed-in member.
func (p *Partner) dashboard(w http.ResponseWriter, r *http.Request) {
	c := p.Session(r)
	if c == nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintln(w, "Not signed in: open this app from your organization's installed apps on Plugboard.")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	dashboardPage.Execute(w, c)
}

var dashboardPage = template.Must(template.New("dashboard").Parse(`<!doctype html><title>Dashboard</title>
<h1>Welcome, {{or .Name .Email}}</h1>
<p>Signed in from Plugboard as {{.Email}}, {{.Role}} of {{.Org}}.</p>
<p>Installation {{.Installation}}.</p>`))
