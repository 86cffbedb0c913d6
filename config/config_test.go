package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8080" || c.Env != EnvDevelopment || !c.AutoMigrate || c.BaseURL != "http://localhost:8080" {
		t.Errorf("defaults: %+v", c)
	}
	if c.DatabaseURL != "postgres://postgres@127.0.0.1:5432/plugboard?sslmode=disable" || c.RedisURL != "redis://127.0.0.1:6379/0" {
		t.Errorf("default URLs: %s %s", c.DatabaseURL, c.RedisURL)
	}
	if c.ShutdownTimeout != 20*time.Second || c.BodyLimitBytes() != 1<<20 {
		t.Errorf("durations and sizes: %v %d", c.ShutdownTimeout, c.BodyLimitBytes())
	}
}

// PLUGBOARD_BILLING_COMMISSION is a percentage, kept in basis points.
func TestBillingCommission(t *testing.T) {
	for raw, want := range map[string]int{"": 2000, "20": 2000, "0": 0, "100": 10000, "12.5": 1250, "7.25": 725, "0.01": 1} {
		c, err := Load(lookup(map[string]string{"PLUGBOARD_BILLING_COMMISSION": raw}))
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		if got, err := c.BillingCommissionBps(); err != nil || got != want {
			t.Errorf("%q: %d bps (%v), want %d", raw, got, err, want)
		}
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	tests := []struct {
		name, value string
		extra       map[string]string
	}{
		{"PLUGBOARD_HTTP_ADDR", "nonsense", nil},
		{"PLUGBOARD_HTTP_ADDR", ":99999", nil},
		{"PLUGBOARD_ENV", "staging", nil},
		{"PLUGBOARD_DATABASE_URL", "mysql://x/y", nil},
		{"PLUGBOARD_DATABASE_URL", "postgres://127.0.0.1:5432", nil},
		{"PLUGBOARD_DATABASE_MAX_CONNS", "0", nil},
		{"PLUGBOARD_DATABASE_MAX_CONNS", "many", nil},
		{"PLUGBOARD_REDIS_URL", "127.0.0.1:6379", nil},
		{"PLUGBOARD_SECRET_KEY", "short", nil},
		{"PLUGBOARD_SECRET_KEY", "", map[string]string{"PLUGBOARD_ENV": "production"}},
		{"PLUGBOARD_LOG_LEVEL", "loud", nil},
		{"PLUGBOARD_LOG_FORMAT", "xml", nil},
		{"PLUGBOARD_SHUTDOWN_TIMEOUT", "soon", nil},
		{"PLUGBOARD_SHUTDOWN_TIMEOUT", "-1s", nil},
		{"PLUGBOARD_SHUTDOWN_TIMEOUT", "0", nil},
		{"PLUGBOARD_DATABASE_WAIT", "a while", nil},
		{"PLUGBOARD_DATABASE_WAIT", "-5s", nil},
		{"PLUGBOARD_HTTP_BODY_LIMIT", "lots", nil},
		{"PLUGBOARD_AUTO_MIGRATE", "perhaps", nil},
		{"PLUGBOARD_BASE_URL", "ftp://x", nil},
		{"PLUGBOARD_PASSWORD_CONCURRENCY", "-1", nil},
		{"PLUGBOARD_PASSWORD_WAIT", "0", nil},
		{"PLUGBOARD_AUTH_RATE_LIMIT_ACCOUNT", "0", nil},
		{"PLUGBOARD_AUTH_RATE_LIMIT_IP", "lots", nil},
		{"PLUGBOARD_AUTH_RATE_WINDOW", "-1m", nil},
		{"PLUGBOARD_API_RATE_LIMIT_USER", "0", nil},
		{"PLUGBOARD_API_RATE_LIMIT_SERVICE", "1000000000", nil},
		{"PLUGBOARD_API_RATE_WINDOW", "0", nil},
		{"PLUGBOARD_BILLING_COMMISSION", "101", nil},
		{"PLUGBOARD_BILLING_COMMISSION", "12.345", nil},
		{"PLUGBOARD_BILLING_COMMISSION", "-5", nil},
		{"PLUGBOARD_BILLING_COMMISSION", "20%", nil},
		{"PLUGBOARD_BILLING_COMMISSION", "12.", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			env := map[string]string{tt.name: tt.value}
			for k, v := range tt.extra {
				env[k] = v
			}
			_, err := Load(lookup(env))
			if err == nil {
				t.Fatal("Load accepted a bad value")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.name+":") || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line starting with %s:", msg, tt.name)
			}
		})
	}
}

// PLUGBOARD_DATABASE_WAIT is how long start-up waits for PostgreSQL: 30s
// unless set, and 0 (not waiting at all) is a value, not an error.
func TestDatabaseWait(t *testing.T) {
	for _, tt := range []struct {
		raw  string
		want time.Duration
	}{{"", 30 * time.Second}, {"2m", 2 * time.Minute}, {"0", 0}, {"0s", 0}} {
		env := map[string]string{}
		if tt.raw != "" {
			env["PLUGBOARD_DATABASE_WAIT"] = tt.raw
		}
		c, err := Load(lookup(env))
		if err != nil {
			t.Fatalf("PLUGBOARD_DATABASE_WAIT=%q: %v", tt.raw, err)
		}
		if c.DatabaseWait != tt.want {
			t.Errorf("PLUGBOARD_DATABASE_WAIT=%q: %v, want %v", tt.raw, c.DatabaseWait, tt.want)
		}
	}
	// The endpoint cache's help has always promised that 0 turns it off.
	c, err := Load(lookup(map[string]string{"PLUGBOARD_WEBHOOKS_ENDPOINT_CACHE_TTL": "0"}))
	if err != nil || c.WebhookEndpointCacheTTL != 0 {
		t.Errorf("PLUGBOARD_WEBHOOKS_ENDPOINT_CACHE_TTL=0: %v, %v", c.WebhookEndpointCacheTTL, err)
	}
}

func TestStringMasksSecrets(t *testing.T) {
	c, err := Load(lookup(map[string]string{
		"PLUGBOARD_SECRET_KEY":   "super-secret-value-that-is-long-enough",
		"PLUGBOARD_DATABASE_URL": "postgres://app:hunter2@db:5432/plugboard",
	}))
	if err != nil {
		t.Fatal(err)
	}
	s := c.String()
	for _, secret := range []string{"super-secret-value", "hunter2"} {
		if strings.Contains(s, secret) {
			t.Errorf("String() shows %q:\n%s", secret, s)
		}
	}
	if !strings.Contains(s, "PLUGBOARD_SECRET_KEY=********") {
		t.Errorf("String() should show the key is set:\n%s", s)
	}
}

func TestEnsureSecretKeyGeneratesOnceInDevelopment(t *testing.T) {
	file := filepath.Join(t.TempDir(), "dir", "secret")
	c, err := Load(lookup(map[string]string{"PLUGBOARD_SECRET_KEY_FILE": file}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureSecretKey(); err != nil {
		t.Fatal(err)
	}
	first := c.SecretKey.Reveal()
	if len(first) < 32 {
		t.Fatalf("generated key too short: %d", len(first))
	}
	c2, _ := Load(lookup(map[string]string{"PLUGBOARD_SECRET_KEY_FILE": file}))
	if err := c2.EnsureSecretKey(); err != nil {
		t.Fatal(err)
	}
	if c2.SecretKey.Reveal() != first {
		t.Error("second start did not reuse the key file")
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
}
