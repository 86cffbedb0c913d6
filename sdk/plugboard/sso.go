package plugboard

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SSOTokenType is the typ header of Plugboard's sign-on tokens. Checking it
// keeps another JWT the platform signs for the app's client id (an install
// state, an OpenID Connect id_token) from passing for a sign-on.
const SSOTokenType = "plugboard-sso+jwt"

// Errors of sign-on verification; compare with [errors.Is]. Every error
// [SSOVerifier.Verify] returns wraps exactly one of them.
var (
	// ErrSSOMalformed: the token is not a Plugboard sign-on JWT (not a
	// JWT, another typ, a claim missing or of the wrong type).
	ErrSSOMalformed = errors.New("plugboard: not a sign-on token")
	// ErrSSOSignature: the signature does not verify under any key of the
	// platform's JWKS, or the algorithm is not EdDSA.
	ErrSSOSignature = errors.New("plugboard: sign-on token signature does not verify")
	// ErrSSOIssuer: the token was issued by another platform (iss).
	ErrSSOIssuer = errors.New("plugboard: sign-on token from another issuer")
	// ErrSSOAudience: the token was minted for another app (aud is not
	// this app's client id).
	ErrSSOAudience = errors.New("plugboard: sign-on token for another app")
	// ErrSSOExpired: the token's minute is over (exp), or it claims to be
	// issued in the future (iat).
	ErrSSOExpired = errors.New("plugboard: sign-on token expired")
	// ErrSSOReplayed: the token's jti was seen before: each token signs in once.
	ErrSSOReplayed = errors.New("plugboard: sign-on token already used")
	// ErrSSOKeys: the platform's JWKS could not be fetched or read.
	ErrSSOKeys = errors.New("plugboard: cannot read the platform's signing keys")
)

// SSOClaims are who a sign-on token signs in, and where.
type SSOClaims struct {
	UserID       string    // sub: the Plugboard user's id
	Email        string    // the user's email address (not verified by Plugboard)
	Name         string    // the user's name, "" when they gave none
	Org          string    // the organization's slug
	Installation string    // the installation's uuid
	Role         string    // the user's role in the organization: owner, admin or member
	ID           string    // jti: unique per sign-on
	IssuedAt     time.Time // iat
	ExpiresAt    time.Time // exp: a minute after IssuedAt
}

// SeenStore remembers the ids (jti) of sign-on tokens already used, until
// they expire. A store shared by every instance of the partner's service
// (Redis SET NX with an expiry, a unique row in a database) keeps a token
// from signing in twice across instances; [MemorySeenStore] is enough for
// one process.
type SeenStore interface {
	// Seen records id until the time given and reports whether it was
	// recorded already, in one atomic step.
	Seen(ctx context.Context, id string, until time.Time) (bool, error)
}

// MemorySeenStore is a [SeenStore] in memory, safe for concurrent use; ids
// are dropped once they expire.
type MemorySeenStore struct {
	// Now is the clock; time.Now when nil. Set it before the first call.
	Now func() time.Time

	mu    sync.Mutex
	ids   map[string]time.Time
	swept time.Time
}

// Seen implements [SeenStore].
func (m *MemorySeenStore) Seen(_ context.Context, id string, until time.Time) (bool, error) {
	now := time.Now()
	if m.Now != nil {
		now = m.Now()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ids == nil {
		m.ids = map[string]time.Time{}
	}
	if now.Sub(m.swept) > time.Minute {
		for k, exp := range m.ids {
			if !exp.After(now) {
				delete(m.ids, k)
			}
		}
		m.swept = now
	}
	if exp, ok := m.ids[id]; ok && exp.After(now) {
		return true, nil
	}
	m.ids[id] = until
	return false, nil
}

// Len is how many ids the store holds (expired ones may linger up to a
// minute).
func (m *MemorySeenStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ids)
}

// SSOVerifier checks the sign-on tokens Plugboard posts to an app's
// ssoUrl when a member of an organization opens the app: an EdDSA JWT
// under a key of the platform's /.well-known/jwks.json (fetched on first
// use, kept for KeysTTL and fetched again for a key id it does not know),
// issued by the platform (iss), for this app (aud, its client id), not
// expired, with a jti not seen before.
//
// Set the fields before the first call; an SSOVerifier is then safe for
// concurrent use.
type SSOVerifier struct {
	// BaseURL is the platform's base URL: the tokens' issuer, and where
	// the JWKS is.
	BaseURL string
	// ClientID is the app's client id, the tokens' audience.
	ClientID string
	// Seen remembers used tokens; a MemorySeenStore when nil.
	Seen SeenStore
	// HTTPClient fetches the JWKS; one with a 10-second timeout when nil.
	HTTPClient *http.Client
	// Leeway allows for clocks apart, on exp and iat; 5 s when zero.
	Leeway time.Duration
	// KeysTTL is how long fetched keys are kept; an hour when zero.
	KeysTTL time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// ErrorHandler answers a refused sign-on in [SSOVerifier.Handler]; by
	// default 401 (503 when the keys cannot be fetched) with a short text.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

	once    sync.Once
	mu      sync.Mutex
	keys    map[string]ed25519.PublicKey
	fetched time.Time
}

// NewSSOVerifier returns a verifier of the sign-on tokens for the app
// clientID on the Plugboard at baseURL, with the defaults.
func NewSSOVerifier(baseURL, clientID string) *SSOVerifier {
	return &SSOVerifier{BaseURL: baseURL, ClientID: clientID}
}

func (v *SSOVerifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *SSOVerifier) init() {
	v.once.Do(func() {
		if v.Seen == nil {
			v.Seen = &MemorySeenStore{Now: v.Now}
		}
		if v.HTTPClient == nil {
			v.HTTPClient = &http.Client{Timeout: 10 * time.Second}
		}
		if v.Leeway == 0 {
			v.Leeway = 5 * time.Second
		}
		if v.KeysTTL == 0 {
			v.KeysTTL = time.Hour
		}
		v.BaseURL = strings.TrimSuffix(v.BaseURL, "/")
	})
}

type ssoJWT struct {
	Email        string `json:"email"`
	Name         string `json:"name"`
	Org          string `json:"org"`
	Installation string `json:"installation"`
	Role         string `json:"role"`
	jwt.RegisteredClaims
}

// Verify checks a sign-on token and returns its claims. The token is
// spent: a second Verify of it fails with [ErrSSOReplayed].
func (v *SSOVerifier) Verify(ctx context.Context, token string) (*SSOClaims, error) {
	v.init()
	var c ssoJWT
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if t.Header["typ"] != SSOTokenType {
			return nil, fmt.Errorf("%w: typ is %v, not %s", ErrSSOMalformed, t.Header["typ"], SSOTokenType)
		}
		kid, _ := t.Header["kid"].(string)
		return v.key(ctx, kid)
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer(v.BaseURL), jwt.WithAudience(v.ClientID),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(v.Leeway), jwt.WithTimeFunc(v.now))
	if err != nil {
		return nil, ssoError(err)
	}
	if c.ID == "" || c.Subject == "" || c.Installation == "" || c.Org == "" || c.IssuedAt == nil {
		return nil, fmt.Errorf("%w: jti, sub, iat, org and installation are required", ErrSSOMalformed)
	}
	seen, err := v.Seen.Seen(ctx, c.ID, c.ExpiresAt.Add(v.Leeway))
	if err != nil {
		return nil, fmt.Errorf("plugboard: recording the sign-on token: %w", err)
	}
	if seen {
		return nil, fmt.Errorf("%w: jti %s", ErrSSOReplayed, c.ID)
	}
	return &SSOClaims{UserID: c.Subject, Email: c.Email, Name: c.Name, Org: c.Org, Installation: c.Installation, Role: c.Role,
		ID: c.ID, IssuedAt: c.IssuedAt.Time, ExpiresAt: c.ExpiresAt.Time}, nil
}

// ssoError says which of the sentinels a parse failure is.
func ssoError(err error) error {
	for _, own := range []error{ErrSSOMalformed, ErrSSOKeys} {
		if errors.Is(err, own) {
			return fmt.Errorf("%w (%v)", own, err)
		}
	}
	var sentinel error
	switch {
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenNotValidYet):
		sentinel = ErrSSOExpired
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		sentinel = ErrSSOIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		sentinel = ErrSSOAudience
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		sentinel = ErrSSOSignature
	default:
		sentinel = ErrSSOMalformed
	}
	return fmt.Errorf("%w (%v)", sentinel, err)
}

// key returns the platform's public key kid, fetching the JWKS when it is
// stale or does not have it (at most every ten seconds for an unknown key,
// so junk tokens cannot make the partner hammer the platform).
func (v *SSOVerifier) key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	find := func() (ed25519.PublicKey, bool) {
		if k, ok := v.keys[kid]; ok {
			return k, true
		}
		if kid == "" && len(v.keys) == 1 {
			for _, k := range v.keys {
				return k, true
			}
		}
		return nil, false
	}
	known, ok := find()
	if ok && now.Sub(v.fetched) < v.KeysTTL {
		return known, nil
	}
	if !ok && v.keys != nil && now.Sub(v.fetched) < 10*time.Second {
		return nil, fmt.Errorf("%w: no key %q in the JWKS", ErrSSOSignature, kid)
	}
	keys, err := v.fetchKeys(ctx)
	if err != nil {
		if ok {
			return known, nil // stale, but the platform is unreachable: the key still holds
		}
		return nil, err
	}
	v.keys, v.fetched = keys, now
	if k, ok := find(); ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: no key %q in the JWKS", ErrSSOSignature, kid)
}

// fetchKeys reads the Ed25519 signing keys of the platform's JWKS.
func (v *SSOVerifier) fetchKeys(ctx context.Context) (map[string]ed25519.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.BaseURL+"/.well-known/jwks.json", nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSSOKeys, err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := v.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSSOKeys, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s answered %s", ErrSSOKeys, req.URL, res.Status)
	}
	var set struct {
		Keys []struct {
			Kty, Crv, X, Kid, Use, Alg string
		} `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSSOKeys, err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "EdDSA") {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			continue
		}
		keys[k.Kid] = ed25519.PublicKey(x)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: the JWKS has no Ed25519 signing key", ErrSSOKeys)
	}
	return keys, nil
}

// Handler is the app's ssoUrl: it takes the form POST Plugboard's "Open
// {App}" sends, verifies its token field and calls signIn with the claims,
// where the partner starts its own session (a cookie) and redirects to its
// dashboard. Other methods answer 405; a missing or refused token is
// answered by ErrorHandler.
func (v *SSOVerifier) Handler(signIn func(w http.ResponseWriter, r *http.Request, c *SSOClaims)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "sign-on tokens are POSTed", http.StatusMethodNotAllowed)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		token := r.PostFormValue("token")
		if token == "" {
			v.refuse(w, r, fmt.Errorf("%w: the form has no token", ErrSSOMalformed))
			return
		}
		c, err := v.Verify(r.Context(), token)
		if err != nil {
			v.refuse(w, r, err)
			return
		}
		signIn(w, r, c)
	})
}

func (v *SSOVerifier) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if v.ErrorHandler != nil {
		v.ErrorHandler(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if errors.Is(err, ErrSSOKeys) {
		http.Error(w, "Signing in is unavailable; try again from Plugboard.", http.StatusServiceUnavailable)
		return
	}
	http.Error(w, "This sign-in link is invalid, expired or already used; open the app again from Plugboard.", http.StatusUnauthorized)
}
