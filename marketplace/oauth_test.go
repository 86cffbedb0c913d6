package marketplace_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/plugboard/plugboard/marketplace"
)

func TestAppJWTAuthenticates(t *testing.T) {
	s := newStudio(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	in := appFields("Signer")
	in.PublicKey = ptr(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	app := s.mustApp(s.admin, "acme", in)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)

	now := s.clock.Now()
	hs := func(secret string, claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	ed := func(key ed25519.PrivateKey, claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	claims := func(iat, exp time.Time) jwt.MapClaims {
		return jwt.MapClaims{"iss": app.ClientID, "iat": iat.Unix(), "exp": exp.Unix()}
	}
	tests := []struct {
		name  string
		token string
		code  string
	}{
		{"HS256 with the client secret", hs(app.ClientSecret, claims(now, now.Add(5*time.Minute))), ""},
		{"EdDSA with the registered key", ed(priv, claims(now, now.Add(10*time.Minute))), ""},
		{"EdDSA with another key", ed(otherPriv, claims(now, now.Add(5*time.Minute))), "invalid_token"},
		{"HS256 with a wrong secret", hs("pbcs_wrong", claims(now, now.Add(5*time.Minute))), "invalid_token"},
		{"longer than ten minutes", hs(app.ClientSecret, claims(now, now.Add(11*time.Minute))), "invalid_token"},
		{"without iat", hs(app.ClientSecret, jwt.MapClaims{"iss": app.ClientID, "exp": now.Add(time.Minute).Unix()}), "invalid_token"},
		{"expired", hs(app.ClientSecret, claims(now.Add(-10*time.Minute), now.Add(-time.Minute))), "invalid_token"},
		{"issued in the future", hs(app.ClientSecret, claims(now.Add(5*time.Minute), now.Add(10*time.Minute))), "invalid_token"},
		{"unknown client", hs(app.ClientSecret, jwt.MapClaims{"iss": "nobody", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}), "invalid_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := s.Accounts.AuthenticateBearer(s.ctx, tt.token)
			wantCode(t, err, tt.code)
			if err == nil && (a.App == nil || a.App.ID != app.ID || a.User != nil) {
				t.Errorf("actor = %+v, want the app", a)
			}
		})
	}

	// The clock decides expiry; a rotated secret stops signing at once.
	good := hs(app.ClientSecret, claims(now, now.Add(5*time.Minute)))
	s.clock.Advance(5*time.Minute + 31*time.Second) // past exp and its 30 s leeway
	_, err = s.Accounts.AuthenticateBearer(s.ctx, good)
	wantCode(t, err, "invalid_token")
	now = s.clock.Now()
	fresh := hs(app.ClientSecret, claims(now, now.Add(5*time.Minute)))
	s.mustBearer(fresh)
	if _, err := s.Apps.RotateClientSecret(s.ctx, s.admin, app.Slug); err != nil {
		t.Fatal(err)
	}
	_, err = s.Accounts.AuthenticateBearer(s.ctx, fresh)
	wantCode(t, err, "invalid_token")
}

func TestRevokeToken(t *testing.T) {
	w := newWorld(t, appFields("Flow App"))
	e := w.env
	client := e.mustClient(w.app)
	first := e.mustExchange(client, e.mustInstall(w.admin, w.customer, w.app.Slug, "free").Code)
	other := e.mustUser("owner@other.example")
	e.mustOrg(other, "Other")
	second := e.mustExchange(client, e.mustInstall(other, "other", w.app.Slug, "free").Code)
	stranger := e.mustClient(e.mustApp(w.dev, w.partner, appFields("Stranger App")))

	// Unknown tokens and other clients' tokens: no error, nothing revoked.
	wantCode(t, e.OAuth.Revoke(e.ctx, client, "pbi_unknown"), "")
	wantCode(t, e.OAuth.Revoke(e.ctx, stranger, first.AccessToken), "")
	e.mustBearer(first.AccessToken)

	// An access token goes alone.
	wantCode(t, e.OAuth.Revoke(e.ctx, client, first.AccessToken), "")
	_, err := e.Accounts.AuthenticateBearer(e.ctx, first.AccessToken)
	wantCode(t, err, "invalid_token")
	next, err := e.OAuth.Token(e.ctx, client, marketplace.TokenRequest{GrantType: "refresh_token", RefreshToken: first.RefreshToken})
	wantCode(t, err, "")

	// A refresh token takes its family along, and only its family.
	wantCode(t, e.OAuth.Revoke(e.ctx, client, next.RefreshToken), "")
	_, err = e.Accounts.AuthenticateBearer(e.ctx, next.AccessToken)
	wantCode(t, err, "invalid_token")
	_, err = e.OAuth.Token(e.ctx, client, marketplace.TokenRequest{GrantType: "refresh_token", RefreshToken: next.RefreshToken})
	wantCode(t, err, "oauth:invalid_grant")
	e.mustBearer(second.AccessToken)
}
