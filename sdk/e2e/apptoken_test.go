package e2e_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"slices"
	"testing"

	"golang.org/x/oauth2"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// getStatus is GET path through hc.
func getStatus(t *testing.T, hc *http.Client, url string) int {
	t.Helper()
	res, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// AppTokenSource against the real platform, through x/oauth2's client: the
// app mints its installation's tokens with its client credentials or an
// app JWT, a down-scoped token cannot exceed its scopes, and the host's
// Introspector sees what each carries.
func TestAppTokenSourceAgainstThePlatform(t *testing.T) {
	p := apptest.Start(t)
	ctx := context.Background()
	dev := signUp(t, p.URL, "dev@acme.example")
	dev.do("POST", "/api/0/organizations/", map[string]string{"name": "Acme"}, 201, nil)
	var app struct {
		Slug, ClientID, ClientSecret string
		Installation                 struct{ UUID string }
	}
	dev.do("POST", "/api/0/organizations/acme/apps/", map[string]any{"name": "Acme Bot", "kind": "internal", "scopes": []string{"org:read", "member:read"}}, 201, &app)
	uuid := app.Installation.UUID
	auth := plugboard.AppAuth{BaseURL: p.URL, ClientID: app.ClientID, ClientSecret: app.ClientSecret}

	// Client credentials, through oauth2.NewClient.
	ts := plugboard.AppTokenSource(auth, uuid)
	hc := oauth2.NewClient(ctx, ts)
	for _, path := range []string{"/api/0/organizations/acme/", "/api/0/organizations/acme/members/", "/api/0/installations/" + uuid + "/"} {
		if s := getStatus(t, hc, p.URL+path); s != 200 {
			t.Errorf("GET %s: %d", path, s)
		}
	}
	tok, err := ts.Token()
	if err != nil || plugboard.InstallationID(tok) != uuid || tok.Extra("scope") != "org:read member:read" {
		t.Fatalf("token %+v %v", tok, err)
	}
	if again, _ := ts.Token(); again.AccessToken != tok.AccessToken {
		t.Error("the source minted again instead of keeping its token")
	}

	// Down-scoped: members are refused, and the host sees org:read only.
	narrow := plugboard.AppTokenSource(auth, uuid, "org:read")
	nc := oauth2.NewClient(ctx, narrow)
	if s := getStatus(t, nc, p.URL+"/api/0/organizations/acme/"); s != 200 {
		t.Errorf("narrowed, org: %d", s)
	}
	if s := getStatus(t, nc, p.URL+"/api/0/organizations/acme/members/"); s != 403 {
		t.Errorf("narrowed, members: %d, want 403", s)
	}
	op := operatorUser(t, p)
	var service struct{ Token string }
	op.do("POST", "/api/0/service-tokens/", map[string]string{"name": "Host"}, 201, &service)
	ntok, _ := narrow.Token()
	in := plugboard.NewIntrospector(p.URL, service.Token)
	if got, err := in.Introspect(ctx, ntok.AccessToken); err != nil || !got.Active || !slices.Equal(got.Scopes(), []string{"org:read"}) ||
		got.InstallationID != uuid || got.Organization.Slug != "acme" || got.ClientID != app.ClientID {
		t.Fatalf("introspection %+v %v", got, err)
	}
	// A scope the installation lacks is refused before any token exists.
	var apiErr *plugboard.APIError
	if _, err := plugboard.AppTokenSource(auth, uuid, "org:write").Token(); !errors.As(err, &apiErr) || apiErr.Code != "invalid_input" || apiErr.Fields["scopes"] == "" {
		t.Errorf("org:write: %v", err)
	}

	// An EdDSA app JWT under the app's registered key.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	dev.do("PUT", "/api/0/apps/"+app.Slug+"/", map[string]any{"publicKey": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}, 200, nil)
	byKey := oauth2.NewClient(ctx, plugboard.AppTokenSource(plugboard.AppAuth{BaseURL: p.URL, ClientID: app.ClientID, PrivateKey: priv}, uuid))
	if s := getStatus(t, byKey, p.URL+"/api/0/organizations/acme/"); s != 200 {
		t.Errorf("by app JWT: %d", s)
	}
	// A key that is not the registered one is refused.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := plugboard.AppTokenSource(plugboard.AppAuth{BaseURL: p.URL, ClientID: app.ClientID, PrivateKey: other}, uuid).Token(); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Errorf("another key: %v", err)
	}
}

// operatorUser makes an operator as the command line does, signed in.
func operatorUser(t *testing.T, p *apptest.Platform) *user {
	t.Helper()
	if _, err := p.App.Marketplace.Accounts.SignUp(t.Context(), marketplace.Anonymous, marketplace.NewUser{Email: "ops@plugboard.example", Password: "correct horse battery", IsOperator: true}); err != nil {
		t.Fatal(err)
	}
	return signIn(t, p.URL, "ops@plugboard.example")
}
