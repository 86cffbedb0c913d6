package plugboard

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Introspection is what Plugboard says of a token a partner sent to the
// host's own API (RFC 7662 §2.2). An inactive token has only Active false.
type Introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`     // space-separated
	ClientID  string `json:"client_id,omitempty"` // the app's
	TokenType string `json:"token_type,omitempty"`
	Exp       int64  `json:"exp,omitempty"` // seconds since 1970; 0: never expires
	Iat       int64  `json:"iat,omitempty"`
	Sub       string `json:"sub,omitempty"` // the installation's uuid
	Iss       string `json:"iss,omitempty"` // the platform's base URL
	// InstallationID is the installation the token acts for.
	InstallationID string `json:"installation_id,omitempty"`
	// Organization is the organization the token acts in: scope the
	// host's data to its ID, which stays when the slug changes.
	Organization *OrganizationRef `json:"organization,omitempty"`
	App          *AppRef          `json:"app,omitempty"`
}

// Scopes returns the token's scopes.
func (t *Introspection) Scopes() []string { return strings.Fields(t.Scope) }

// HasScope reports whether the token carries scope.
func (t *Introspection) HasScope(scope string) bool { return slices.Contains(t.Scopes(), scope) }

// TokenIntrospector says what a token is; [*Introspector] asks Plugboard.
type TokenIntrospector interface {
	Introspect(ctx context.Context, token string) (*Introspection, error)
}

// MaxIntrospectionCache is the longest an [Introspector] keeps an active
// answer: a token revoked, uninstalled or suspended at Plugboard is
// refused by the host within it.
const MaxIntrospectionCache = time.Second

// Introspector asks the Plugboard at BaseURL (its root; a trailing /api/0
// is accepted) about tokens, with the host's
// service token (pbh_…), at POST /oauth/introspect. It may keep active
// answers for CacheFor (at most [MaxIntrospectionCache]; 0 keeps none),
// so a host serving bursts from one partner asks once per burst, yet sees
// a revocation within a second. Inactive answers are never kept. It is
// safe for concurrent use; share one.
type Introspector struct {
	BaseURL      string
	ServiceToken string
	CacheFor     time.Duration
	// HTTPClient sends the requests; nil: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Logger, when set, hears why Plugboard could not be asked.
	Logger *slog.Logger

	mu    sync.Mutex
	cache map[[sha256.Size]byte]cached
	swept time.Time
	now   func() time.Time // tests
}

type cached struct {
	answer *Introspection
	until  time.Time
}

// NewIntrospector returns an Introspector for the Plugboard at baseURL
// with the host's service token, which keeps active answers for a second.
func NewIntrospector(baseURL, serviceToken string) *Introspector {
	return &Introspector{BaseURL: baseURL, ServiceToken: serviceToken, CacheFor: MaxIntrospectionCache}
}

// maxCached bounds the cache; past it, what expired is swept, and if that
// is not enough the cache starts again empty.
const maxCached = 10000

func (in *Introspector) clock() time.Time {
	if in.now != nil {
		return in.now()
	}
	return time.Now()
}

// Introspect asks Plugboard about token. An inactive token is an answer
// (Active false), not an error; an error says Plugboard could not be
// asked, or refused the service token (an [*APIError] then).
func (in *Introspector) Introspect(ctx context.Context, token string) (*Introspection, error) {
	key := sha256.Sum256([]byte(token))
	ttl := min(in.CacheFor, MaxIntrospectionCache)
	if ttl > 0 {
		in.mu.Lock()
		c, ok := in.cache[key]
		in.mu.Unlock()
		if ok && in.clock().Before(c.until) {
			return c.answer, nil
		}
	}
	answer, err := in.ask(ctx, token)
	if err != nil && in.Logger != nil {
		in.Logger.WarnContext(ctx, "plugboard: introspection failed", "err", err)
	}
	if err != nil || !answer.Active || ttl <= 0 {
		return answer, err
	}
	now := in.clock()
	until := now.Add(ttl)
	if answer.Exp > 0 {
		if exp := time.Unix(answer.Exp, 0); exp.Before(until) {
			until = exp
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cache == nil {
		in.cache = map[[sha256.Size]byte]cached{}
	}
	if len(in.cache) >= maxCached && now.Sub(in.swept) >= ttl {
		for k, c := range in.cache {
			if !now.Before(c.until) {
				delete(in.cache, k)
			}
		}
		in.swept = now
	}
	if len(in.cache) >= maxCached {
		clear(in.cache)
	}
	in.cache[key] = cached{answer: answer, until: until}
	return answer, nil
}

// ask is one call of /oauth/introspect.
func (in *Introspector) ask(ctx context.Context, token string) (*Introspection, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(strings.TrimSuffix(in.BaseURL, "/"), "/api/0")+"/oauth/introspect", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("plugboard: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+in.ServiceToken)
	req.Header.Set("User-Agent", "plugboard-go/"+Version)
	hc := in.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("plugboard: introspecting a token: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("plugboard: reading an introspection: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, apiError(res, body)
	}
	var out Introspection
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("plugboard: decoding an introspection: %w", err)
	}
	return &out, nil
}

type introspectionKey struct{}

// IntrospectionFrom returns the introspection of the token a request
// passed [RequireScopes] with: what the host scopes its answer by
// (Organization.ID).
func IntrospectionFrom(ctx context.Context) (*Introspection, bool) {
	t, ok := ctx.Value(introspectionKey{}).(*Introspection)
	return t, ok
}

// RequireScopes returns middleware for the host's own API: it reads the
// installation token a partner sends as Authorization: Bearer, asks
// introspector about it, and lets the request through only when the token
// is active and carries every one of scopes, with the introspection in its
// context ([IntrospectionFrom]). It answers, with RFC 6750 challenges:
//
//   - 401 (error="invalid_token" when a token was sent) for no token, or
//     one that is not active: unknown, expired, revoked, of an
//     installation that was uninstalled or suspended;
//   - 403 error="insufficient_scope" scope="…" for a token without one of
//     scopes;
//   - 503 with Retry-After when Plugboard could not be asked (an
//     [*Introspector] logs why on its Logger).
//
// Bodies are small JSON objects {"error", "error_description"}. Handlers
// share the introspection with others while it is cached: read it, do not
// change it.
func RequireScopes(introspector TokenIntrospector, scopes ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := bearerToken(r)
			if !ok {
				refuse(w, http.StatusUnauthorized, "Bearer", "", "Send the installation's access token as Authorization: Bearer.")
				return
			}
			t, err := introspector.Introspect(r.Context(), token)
			if err != nil {
				w.Header().Set("Retry-After", "1")
				refuse(w, http.StatusServiceUnavailable, "", "temporarily_unavailable", "The token could not be checked; try again.")
				return
			}
			if !t.Active {
				refuse(w, http.StatusUnauthorized, `Bearer error="invalid_token"`, "invalid_token", "The token is not active: unknown, expired, revoked, or its installation was uninstalled or suspended.")
				return
			}
			for _, sc := range scopes {
				if !t.HasScope(sc) {
					refuse(w, http.StatusForbidden, fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q`, strings.Join(scopes, " ")),
						"insufficient_scope", fmt.Sprintf("The token was not granted the %s scope.", sc))
					return
				}
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), introspectionKey{}, t)))
		})
	}
}

// bearerToken reads Authorization: Bearer (the scheme in any case, RFC
// 9110 §11.1).
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
}

func refuse(w http.ResponseWriter, status int, challenge, code, desc string) {
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	body := map[string]string{"error_description": desc}
	if code != "" {
		body["error"] = code
	}
	json.NewEncoder(w).Encode(body)
}
