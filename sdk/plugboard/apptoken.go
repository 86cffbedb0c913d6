package plugboard

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
)

// AppAuth is how an app authenticates as itself to the Plugboard at
// BaseURL: with its client credentials (HTTP Basic), or, when PrivateKey
// is set, with a short JWT it signs for each request (iss its client id,
// five minutes long) under the key whose public half is the app's
// registered publicKey. Either way the client secret or key stays with
// the partner, and no installation's refresh token need be stored.
type AppAuth struct {
	BaseURL      string
	ClientID     string
	ClientSecret string // used when PrivateKey is nil
	// PrivateKey signs app JWTs: an *rsa.PrivateKey (RS256) or an
	// ed25519.PrivateKey (EdDSA).
	PrivateKey crypto.Signer
	// HTTPClient sends the requests; nil: a client with a 30 s timeout.
	HTTPClient *http.Client
}

// appJWTLife is how long the app JWTs AppAuth signs last; Plugboard
// accepts at most ten minutes.
const appJWTLife = 5 * time.Minute

// authorize sets r's credentials.
func (a AppAuth) authorize(r *http.Request) error {
	if a.PrivateKey == nil {
		r.SetBasicAuth(a.ClientID, a.ClientSecret)
		return nil
	}
	var method jwt.SigningMethod
	switch a.PrivateKey.(type) {
	case *rsa.PrivateKey:
		method = jwt.SigningMethodRS256
	case ed25519.PrivateKey:
		method = jwt.SigningMethodEdDSA
	default:
		return fmt.Errorf("plugboard: app JWTs are signed with an *rsa.PrivateKey or an ed25519.PrivateKey, not %T", a.PrivateKey)
	}
	now := time.Now()
	signed, err := jwt.NewWithClaims(method, jwt.RegisteredClaims{Issuer: a.ClientID, IssuedAt: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(appJWTLife))}).SignedString(a.PrivateKey)
	if err != nil {
		return fmt.Errorf("plugboard: signing an app JWT: %w", err)
	}
	r.Header.Set("Authorization", "Bearer "+signed)
	return nil
}

// WithAppAuth makes the client authenticate as the app itself, as auth
// says (client credentials, or an app JWT signed for each request).
// auth's BaseURL and HTTPClient are not used: NewClient's are.
func WithAppAuth(auth AppAuth) ClientOption {
	return func(c *Client) { c.auth = auth.authorize }
}

// AccessToken is an installation access token the app minted for itself.
type AccessToken struct {
	Token     string    `json:"token"` // pbi_…, sent as Authorization: Bearer
	ExpiresAt time.Time `json:"expiresAt"`
	Scopes    []string  `json:"scopes"`
}

// CreateAccessToken mints a fresh access token for the installation with
// uuid, eight hours long and without a refresh token, carrying scopes (a
// subset of the installation's; none given: all of them). It needs the
// app's own credentials ([WithClientCredentials] or [WithAppAuth]); a
// suspended installation is refused with 401 installation_suspended, one
// that ended with 409 installation_not_live.
func (c *Client) CreateAccessToken(ctx context.Context, uuid string, scopes ...string) (*AccessToken, error) {
	var body any
	if len(scopes) > 0 {
		body = map[string]any{"scopes": scopes}
	}
	var out AccessToken
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/installations/" + esc(uuid) + "/access-tokens/", body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// tokenEarly is how long before its expiry an AppTokenSource mints the
// next token, so that no request goes out with one about to lapse.
const tokenEarly = time.Minute

// AppTokenSource returns an [oauth2.TokenSource] of access tokens for the
// installation with uuid, which the app mints for itself with auth
// ([Client.CreateAccessToken]), narrowed to scopes when any are given. It
// keeps the token it has until a minute before it expires
// ([oauth2.ReuseTokenSourceWithExpiry]), and is safe for concurrent use:
// share one per installation. Give it to [oauth2.NewClient] for an
// *http.Client that calls the host's API or Plugboard's as the
// installation, or to [WithTokenSource]. The tokens carry extras:
// [InstallationID] reads the installation, Extra("scope") the scopes.
//
// A token the source cannot mint is an error of Token (so of the request
// it was for), an [*APIError] when Plugboard answered: 401
// installation_suspended while the installation is suspended, 409
// installation_not_live once it was uninstalled.
func AppTokenSource(auth AppAuth, uuid string, scopes ...string) oauth2.TokenSource {
	return oauth2.ReuseTokenSourceWithExpiry(nil, &appTokenSource{auth: auth, uuid: uuid, scopes: scopes}, tokenEarly)
}

type appTokenSource struct {
	auth   AppAuth
	uuid   string
	scopes []string
}

// Token mints a token; the ReuseTokenSource around it decides when.
func (s *appTokenSource) Token() (*oauth2.Token, error) {
	opts := []ClientOption{WithAppAuth(s.auth)}
	if s.auth.HTTPClient != nil {
		opts = append(opts, WithHTTPClient(s.auth.HTTPClient))
	}
	c, err := NewClient(s.auth.BaseURL, opts...)
	if err != nil {
		return nil, err
	}
	if s.uuid == "" {
		return nil, errors.New("plugboard: AppTokenSource needs the installation's uuid")
	}
	at, err := c.CreateAccessToken(context.Background(), s.uuid, s.scopes...)
	if err != nil {
		return nil, err
	}
	tok := &oauth2.Token{AccessToken: at.Token, TokenType: "Bearer", Expiry: at.ExpiresAt}
	return tok.WithExtra(map[string]any{"installation_id": s.uuid, "scope": strings.Join(at.Scopes, " ")}), nil
}
