// Package config holds Plugboard's typed configuration: defaults that run on a
// developer machine, then PLUGBOARD_* environment variables, then Validate.
//
// It imports nothing of Plugboard; app reads it once at start-up and passes
// values down. Nothing else reads the environment.
package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Environments Plugboard knows.
const (
	EnvDevelopment = "development"
	EnvTest        = "test"
	EnvProduction  = "production"
)

// Secret is a string that never prints itself.
type Secret string

// String masks the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "********"
}

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// Config is every setting Plugboard reads. The `env` tag names the variable,
// `default` its value when unset, `help` what it expects; a duration is
// positive unless `zero:"allowed"` lets it be 0.
type Config struct {
	Env      string `env:"PLUGBOARD_ENV" default:"development" help:"one of development, test, production"`
	HTTPAddr string `env:"PLUGBOARD_HTTP_ADDR" default:":8080" help:"a listen address such as :8080 or 127.0.0.1:8080"`
	BaseURL  string `env:"PLUGBOARD_BASE_URL" default:"" help:"the public URL of this server, such as https://plugboard.example.com (default http://localhost plus the HTTP port)"`

	DatabaseURL      string `env:"PLUGBOARD_DATABASE_URL" default:"postgres://postgres@127.0.0.1:5432/plugboard?sslmode=disable" help:"a postgres:// URL"`
	DatabaseMaxConns int    `env:"PLUGBOARD_DATABASE_MAX_CONNS" default:"20" help:"a whole number from 1 to 1000"`
	AutoMigrate      bool   `env:"PLUGBOARD_AUTO_MIGRATE" default:"" help:"true or false (default: true in development)"`
	// DatabaseWait lets `docker compose up` start the platform beside a
	// PostgreSQL that is still starting, instead of racing it.
	DatabaseWait time.Duration `env:"PLUGBOARD_DATABASE_WAIT" default:"30s" zero:"allowed" help:"a duration such as 30s (how long start-up waits for PostgreSQL to answer; 0 gives up at once)"`

	RedisURL string `env:"PLUGBOARD_REDIS_URL" default:"redis://127.0.0.1:6379/0" help:"a redis:// URL"`

	SecretKey     Secret `env:"PLUGBOARD_SECRET_KEY" default:"" help:"at least 32 characters of random text (required in production)"`
	SecretKeyFile string `env:"PLUGBOARD_SECRET_KEY_FILE" default:".plugboard/secret-key" help:"a file holding the key, read when PLUGBOARD_SECRET_KEY is unset (a mounted secret); in development and tests the key is generated there if the file is missing"`

	LogLevel  string `env:"PLUGBOARD_LOG_LEVEL" default:"info" help:"one of debug, info, warn, error"`
	LogFormat string `env:"PLUGBOARD_LOG_FORMAT" default:"text" help:"text or json"`

	ReadTimeout     time.Duration `env:"PLUGBOARD_HTTP_READ_TIMEOUT" default:"15s" help:"a duration such as 15s"`
	WriteTimeout    time.Duration `env:"PLUGBOARD_HTTP_WRITE_TIMEOUT" default:"30s" help:"a duration such as 30s"`
	ShutdownTimeout time.Duration `env:"PLUGBOARD_SHUTDOWN_TIMEOUT" default:"20s" help:"a duration such as 20s"`
	BodyLimit       string        `env:"PLUGBOARD_HTTP_BODY_LIMIT" default:"1M" help:"a size such as 512K or 1M"`

	WorkerConcurrency int `env:"PLUGBOARD_WORKER_CONCURRENCY" default:"20" help:"a whole number from 1 to 10000"`

	SessionTTL time.Duration `env:"PLUGBOARD_SESSION_TTL" default:"336h" help:"a duration such as 336h"`
	TokenTTL   time.Duration `env:"PLUGBOARD_TOKEN_TTL" default:"1h" help:"a duration such as 1h (lifetime of the JWT from POST /api/0/auth/)"`

	ReconcileInterval    time.Duration `env:"PLUGBOARD_RECONCILE_INTERVAL" default:"5m" help:"a duration such as 5m (how often reconciliation jobs run)"`
	InstallVerifyTimeout time.Duration `env:"PLUGBOARD_INSTALL_VERIFY_TIMEOUT" default:"1h" help:"a duration such as 1h (how long an install may stay pending)"`

	ProvisionTimeout  time.Duration `env:"PLUGBOARD_PROVISION_TIMEOUT" default:"25s" help:"a duration such as 25s (how long an app's provisioning endpoint may take to answer; keep it below PLUGBOARD_HTTP_WRITE_TIMEOUT)"`
	ProvisionDeadline time.Duration `env:"PLUGBOARD_PROVISION_DEADLINE" default:"12h" help:"a duration such as 12h (how long an installation may stay provisioning before it fails and is deprovisioned)"`

	// BillingCommission is the platform's share of every paid invoice line
	// of an app an operator gave no commission of its own.
	BillingCommission string `env:"PLUGBOARD_BILLING_COMMISSION" default:"20" help:"a percentage from 0 to 100 with at most two decimals, such as 20 or 12.5 (the platform's commission on paid invoices, unless an operator sets one for the app)"`

	GrantTTL time.Duration `env:"PLUGBOARD_GRANT_TTL" default:"10m" help:"a duration such as 10m (how long an install code may be exchanged)"`

	WebhookRetrySchedule    string        `env:"PLUGBOARD_WEBHOOKS_RETRY_SCHEDULE" default:"0s,5s,5m,30m,2h,5h,10h,10h" help:"comma-separated durations such as 5s,5m,30m (the delay before each attempt)"`
	WebhookTimeout          time.Duration `env:"PLUGBOARD_WEBHOOKS_TIMEOUT" default:"15s" help:"a duration such as 15s"`
	WebhookAllowPrivate     bool          `env:"PLUGBOARD_WEBHOOKS_ALLOW_PRIVATE" default:"" help:"true or false (default: true outside production): deliver to loopback and private addresses"`
	WebhookRetention        time.Duration `env:"PLUGBOARD_WEBHOOKS_RETENTION" default:"720h" help:"a duration such as 720h (how long attempts are kept)"`
	WebhookDisableAfter     time.Duration `env:"PLUGBOARD_WEBHOOKS_DISABLE_AFTER" default:"72h" help:"a duration such as 72h (an endpoint failing everything this long is disabled)"`
	WebhookRateLimit        int           `env:"PLUGBOARD_WEBHOOKS_RATE_LIMIT" default:"50" help:"deliveries per second per app, a whole number from 1 to 100000"`
	WebhookMaxInFlight      int           `env:"PLUGBOARD_WEBHOOKS_MAX_IN_FLIGHT" default:"10" help:"concurrent requests per app, a whole number from 1 to 10000"`
	RelayInterval           time.Duration `env:"PLUGBOARD_WEBHOOKS_RELAY_INTERVAL" default:"10s" help:"a duration such as 10s (how often the relay looks for due deliveries)"`
	RelayGrace              time.Duration `env:"PLUGBOARD_WEBHOOKS_RELAY_GRACE" default:"30s" help:"a duration such as 30s (how long a due delivery waits before the relay enqueues it again)"`
	EventsMaxDepth          int           `env:"PLUGBOARD_EVENTS_MAX_DEPTH" default:"64" help:"a whole number from 1 to 1000 (how deep a published event's data may nest objects and arrays; deeper data is refused with 400)"`
	WebhookEndpointCacheTTL time.Duration `env:"PLUGBOARD_WEBHOOKS_ENDPOINT_CACHE_TTL" default:"2s" zero:"allowed" help:"a duration such as 2s (how long a worker keeps an app's endpoint, secrets and limits before reading them again; 0 reads them for every batch)"`

	// Delivery streams (GET /api/0/apps/{app_slug}/delivery-stream/, what
	// plugboard listen holds open): caps per user and per app across the
	// platform, and per API process.
	StreamsPerUser int `env:"PLUGBOARD_STREAMS_PER_USER" default:"10" help:"open delivery streams per user (or app as itself), a whole number from 1 to 100000"`
	StreamsPerApp  int `env:"PLUGBOARD_STREAMS_PER_APP" default:"50" help:"open delivery streams per app, a whole number from 1 to 100000"`
	StreamsMax     int `env:"PLUGBOARD_STREAMS_MAX" default:"1000" help:"open delivery streams per API process, a whole number from 1 to 100000"`

	// PasswordCost is the bcrypt cost; tests lower it.
	PasswordCost int `env:"PLUGBOARD_PASSWORD_COST" default:"11" help:"a bcrypt cost from 4 to 15"`
	// PasswordConcurrency bounds the bcrypt work in flight, so that a flood
	// of sign-ins cannot take every core from other requests; a sign-in
	// that waits longer than PasswordWait for a slot answers 503.
	PasswordConcurrency int           `env:"PLUGBOARD_PASSWORD_CONCURRENCY" default:"0" help:"a whole number from 0 to 1000 (password hashes computed at once; 0: half the cores, GOMAXPROCS/2, at least 1)"`
	PasswordWait        time.Duration `env:"PLUGBOARD_PASSWORD_WAIT" default:"1s" help:"a duration such as 1s (how long a sign-in waits for a free password slot before 503 Retry-After)"`

	// Attempts at passwords and client secrets, counted in Redis and shared
	// by every process: past a budget the answer is 429 with Retry-After.
	AuthRateLimitAccount int           `env:"PLUGBOARD_AUTH_RATE_LIMIT_ACCOUNT" default:"10" help:"a whole number from 1 to 1000000 (sign-in attempts per account per PLUGBOARD_AUTH_RATE_WINDOW)"`
	AuthRateLimitIP      int           `env:"PLUGBOARD_AUTH_RATE_LIMIT_IP" default:"100" help:"a whole number from 1 to 1000000 (sign-ins, sign-ups and failed token requests per client IP per PLUGBOARD_AUTH_RATE_WINDOW)"`
	AuthRateLimitClient  int           `env:"PLUGBOARD_AUTH_RATE_LIMIT_CLIENT" default:"100" help:"a whole number from 1 to 1000000 (failed token requests per OAuth client_id per PLUGBOARD_AUTH_RATE_WINDOW)"`
	AuthRateWindow       time.Duration `env:"PLUGBOARD_AUTH_RATE_WINDOW" default:"15m" help:"a duration such as 15m (the window the sign-in budgets refill over)"`

	// API budgets per caller and window, by class of credential; shared by
	// every API process through Redis.
	APIRateLimitUser         int           `env:"PLUGBOARD_API_RATE_LIMIT_USER" default:"1200" help:"a whole number from 1 to 100000000 (requests per signed-in user per PLUGBOARD_API_RATE_WINDOW)"`
	APIRateLimitInstallation int           `env:"PLUGBOARD_API_RATE_LIMIT_INSTALLATION" default:"1200" help:"a whole number from 1 to 100000000 (requests per installation token, or per app with its own credentials, per window)"`
	APIRateLimitService      int           `env:"PLUGBOARD_API_RATE_LIMIT_SERVICE" default:"100000" help:"a whole number from 1 to 100000000 (requests per host service token per window)"`
	APIRateLimitAnonymous    int           `env:"PLUGBOARD_API_RATE_LIMIT_ANONYMOUS" default:"600" help:"a whole number from 1 to 100000000 (requests without credentials per client IP per window)"`
	APIRateWindow            time.Duration `env:"PLUGBOARD_API_RATE_WINDOW" default:"1m" help:"a duration such as 1m (the window the API budgets refill over)"`
}

// Load builds a Config from defaults and the variables lookup returns
// (os.LookupEnv in the binary, a map in tests), then validates it.
func Load(lookup func(string) (string, bool)) (Config, error) {
	var c Config
	v := reflect.ValueOf(&c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("env")
		raw, ok := lookup(name)
		if !ok || raw == "" {
			raw = f.Tag.Get("default")
		}
		if raw == "" {
			continue
		}
		if err := setField(v.Field(i), raw, f.Tag.Get("zero") == "allowed"); err != nil {
			return c, fmt.Errorf("%s: expected %s, got %q", name, f.Tag.Get("help"), raw)
		}
	}
	if _, ok := lookup("PLUGBOARD_AUTO_MIGRATE"); !ok {
		c.AutoMigrate = c.Env != EnvProduction
	}
	if _, ok := lookup("PLUGBOARD_WEBHOOKS_ALLOW_PRIVATE"); !ok {
		c.WebhookAllowPrivate = c.Env != EnvProduction
	}
	if c.BaseURL == "" {
		port := "8080"
		if _, p, err := net.SplitHostPort(c.HTTPAddr); err == nil && p != "" {
			port = p
		}
		c.BaseURL = "http://localhost:" + port
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if err := c.readSecretKeyFile(); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// readSecretKeyFile fills SecretKey from PLUGBOARD_SECRET_KEY_FILE when the
// variable itself is unset and the file exists, in every environment (a
// container's mounted secret, say).
func (c *Config) readSecretKeyFile() error {
	if c.SecretKey != "" || c.SecretKeyFile == "" {
		return nil
	}
	b, err := os.ReadFile(c.SecretKeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("PLUGBOARD_SECRET_KEY_FILE: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if len(key) < 32 {
		return fmt.Errorf("PLUGBOARD_SECRET_KEY_FILE: %s holds fewer than 32 characters", c.SecretKeyFile)
	}
	c.SecretKey = Secret(key)
	return nil
}

func setField(f reflect.Value, raw string, zeroAllowed bool) error {
	switch f.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil || d < 0 || (d == 0 && !zeroAllowed) {
			return errors.New("bad duration")
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(raw)
	case reflect.Int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return err
		}
		f.SetInt(int64(n))
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return err
		}
		f.SetBool(b)
	default:
		return fmt.Errorf("unsupported kind %s", f.Kind())
	}
	return nil
}

// Validate checks every value and names the first bad variable.
func (c Config) Validate() error {
	bad := func(field, got string) error {
		f, _ := reflect.TypeOf(c).FieldByName(field)
		return fmt.Errorf("%s: expected %s, got %q", f.Tag.Get("env"), f.Tag.Get("help"), got)
	}
	switch c.Env {
	case EnvDevelopment, EnvTest, EnvProduction:
	default:
		return bad("Env", c.Env)
	}
	if host, port, err := net.SplitHostPort(c.HTTPAddr); err != nil || !validPort(port) || strings.ContainsAny(host, " /") {
		return bad("HTTPAddr", c.HTTPAddr)
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("BaseURL", c.BaseURL)
	}
	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return bad("DatabaseURL", MaskURL(c.DatabaseURL))
	}
	if c.DatabaseMaxConns < 1 || c.DatabaseMaxConns > 1000 {
		return bad("DatabaseMaxConns", strconv.Itoa(c.DatabaseMaxConns))
	}
	if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return bad("RedisURL", MaskURL(c.RedisURL))
	}
	if c.SecretKey != "" && len(c.SecretKey) < 32 {
		return bad("SecretKey", c.SecretKey.String())
	}
	if c.Env == EnvProduction && c.SecretKey == "" {
		return fmt.Errorf("PLUGBOARD_SECRET_KEY: required in production: expected at least 32 characters of random text, or a file at PLUGBOARD_SECRET_KEY_FILE (%s)", c.SecretKeyFile)
	}
	if _, err := c.SlogLevel(); err != nil {
		return bad("LogLevel", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return bad("LogFormat", c.LogFormat)
	}
	if _, err := ParseSize(c.BodyLimit); err != nil {
		return bad("BodyLimit", c.BodyLimit)
	}
	if _, err := c.BillingCommissionBps(); err != nil {
		return bad("BillingCommission", c.BillingCommission)
	}
	if c.WorkerConcurrency < 1 || c.WorkerConcurrency > 10000 {
		return bad("WorkerConcurrency", strconv.Itoa(c.WorkerConcurrency))
	}
	if _, err := webhookSchedule(c.WebhookRetrySchedule); err != nil {
		return bad("WebhookRetrySchedule", c.WebhookRetrySchedule)
	}
	if c.EventsMaxDepth < 1 || c.EventsMaxDepth > 1000 {
		return bad("EventsMaxDepth", strconv.Itoa(c.EventsMaxDepth))
	}
	if c.WebhookRateLimit < 1 || c.WebhookRateLimit > 100000 {
		return bad("WebhookRateLimit", strconv.Itoa(c.WebhookRateLimit))
	}
	if c.WebhookMaxInFlight < 1 || c.WebhookMaxInFlight > 10000 {
		return bad("WebhookMaxInFlight", strconv.Itoa(c.WebhookMaxInFlight))
	}
	for field, n := range map[string]int{"StreamsPerUser": c.StreamsPerUser, "StreamsPerApp": c.StreamsPerApp, "StreamsMax": c.StreamsMax} {
		if n < 1 || n > 100000 {
			return bad(field, strconv.Itoa(n))
		}
	}
	if c.PasswordCost < 4 || c.PasswordCost > 15 {
		return bad("PasswordCost", strconv.Itoa(c.PasswordCost))
	}
	if c.PasswordConcurrency < 0 || c.PasswordConcurrency > 1000 {
		return bad("PasswordConcurrency", strconv.Itoa(c.PasswordConcurrency))
	}
	for _, b := range []struct {
		field  string
		n, max int
	}{
		{"AuthRateLimitAccount", c.AuthRateLimitAccount, 1000000}, {"AuthRateLimitIP", c.AuthRateLimitIP, 1000000},
		{"AuthRateLimitClient", c.AuthRateLimitClient, 1000000}, {"APIRateLimitUser", c.APIRateLimitUser, 100000000},
		{"APIRateLimitInstallation", c.APIRateLimitInstallation, 100000000}, {"APIRateLimitService", c.APIRateLimitService, 100000000},
		{"APIRateLimitAnonymous", c.APIRateLimitAnonymous, 100000000},
	} {
		if b.n < 1 || b.n > b.max {
			return bad(b.field, strconv.Itoa(b.n))
		}
	}
	return nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

// SlogLevel returns the configured log level.
func (c Config) SlogLevel() (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(c.LogLevel))
	return l, err
}

// BillingCommissionBps is PLUGBOARD_BILLING_COMMISSION in basis points:
// "20" is 2000, "12.5" is 1250.
func (c Config) BillingCommissionBps() (int, error) {
	whole, frac, _ := strings.Cut(strings.TrimSpace(c.BillingCommission), ".")
	if whole == "" || len(whole) > 3 || len(frac) > 2 || strings.Trim(whole+frac, "0123456789") != "" || (strings.Contains(c.BillingCommission, ".") && frac == "") {
		return 0, fmt.Errorf("bad commission %q", c.BillingCommission)
	}
	w, _ := strconv.Atoi(whole)
	f, _ := strconv.Atoi((frac + "00")[:2])
	if bps := w*100 + f; bps <= 10000 {
		return bps, nil
	}
	return 0, fmt.Errorf("commission %q above 100", c.BillingCommission)
}

// BodyLimitBytes returns the body limit in bytes.
func (c Config) BodyLimitBytes() int64 {
	n, _ := ParseSize(c.BodyLimit)
	return n
}

// ParseSize reads sizes such as 512, 64K, 1M, 2G.
func ParseSize(s string) (int64, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for suffix, m := range map[string]int64{"K": 1 << 10, "M": 1 << 20, "G": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			mult, s = m, strings.TrimSuffix(s, suffix)
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// String prints the configuration with secrets and URL passwords masked.
func (c Config) String() string {
	var b strings.Builder
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		val := fmt.Sprint(v.Field(i).Interface())
		if strings.HasSuffix(f.Name, "URL") {
			val = MaskURL(val)
		}
		fmt.Fprintf(&b, "%s=%s\n", f.Tag.Get("env"), val)
	}
	return b.String()
}

// MaskURL hides the password of a URL.
func MaskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// EnsureSecretKey fills SecretKey in development and test when neither the
// variable nor the key file gave one: it generates a key and writes it to
// the key file. Production must set the key or mount the file.
func (c *Config) EnsureSecretKey() error {
	if err := c.readSecretKeyFile(); err != nil || c.SecretKey != "" {
		return err
	}
	if c.Env == EnvProduction {
		return fmt.Errorf("PLUGBOARD_SECRET_KEY: required in production (or a file at PLUGBOARD_SECRET_KEY_FILE)")
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("generating secret key: %w", err)
	}
	key := base64.RawURLEncoding.EncodeToString(buf)
	if err := os.MkdirAll(filepath.Dir(c.SecretKeyFile), 0o700); err != nil {
		return fmt.Errorf("PLUGBOARD_SECRET_KEY_FILE: %w", err)
	}
	if err := os.WriteFile(c.SecretKeyFile, []byte(key+"\n"), 0o600); err != nil {
		return fmt.Errorf("PLUGBOARD_SECRET_KEY_FILE: %w", err)
	}
	c.SecretKey = Secret(key)
	return nil
}

// RetrySchedule returns the parsed webhook retry schedule.
func (c Config) RetrySchedule() []time.Duration {
	d, _ := webhookSchedule(c.WebhookRetrySchedule)
	return d
}

func webhookSchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("bad duration %q", part)
		}
		out = append(out, d)
	}
	if len(out) > 0 && out[0] != 0 {
		out = append([]time.Duration{0}, out...)
	}
	return out, nil
}
