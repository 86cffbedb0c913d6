package plugboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// Endpoint is Plugboard's OAuth 2.0 authorization and token endpoints at
// baseURL (the site's root). Clients authenticate with HTTP Basic.
func Endpoint(baseURL string) oauth2.Endpoint {
	b := strings.TrimSuffix(baseURL, "/")
	return oauth2.Endpoint{AuthURL: b + "/oauth/authorize", TokenURL: b + "/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}
}

// OAuth2Config returns the oauth2 configuration of an app on the Plugboard
// at baseURL. redirectURL must be the app's registered redirect URL.
//
// Exchange turns the code of installation.created (or of the install
// redirect's code query parameter) into an installation's tokens: an access
// token (pbi_…, eight hours) and a refresh token (pbr_…). Refresh tokens
// rotate and a reused one revokes its whole family, so store the new token
// each time TokenSource refreshes. [InstallationID] reads which installation
// a token is for.
//
// For an install the app starts itself, AuthCodeURL sends the user to
// Plugboard's consent page, and the code comes back to redirectURL. Use
// PKCE there (oauth2.S256ChallengeOption, then oauth2.VerifierOption on
// Exchange); Plugboard accepts only the S256 method. scopes must be among
// the app's registered scopes.
func OAuth2Config(baseURL, clientID, clientSecret, redirectURL string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		Endpoint:     Endpoint(baseURL),
		RedirectURL:  redirectURL,
		Scopes:       scopes,
	}
}

// InstallationID returns the uuid of the installation a token from
// Plugboard's token endpoint acts for, "" if tok does not say (a token not
// fresh from the endpoint, restored from storage, carries no extras: keep
// the uuid with it).
func InstallationID(tok *oauth2.Token) string {
	if tok == nil {
		return ""
	}
	s, _ := tok.Extra("installation_id").(string)
	return s
}

// RevokeToken revokes an access or refresh token of the app's at the
// Plugboard at baseURL (RFC 7009): revoking a refresh token ends its access
// tokens too. It succeeds for a token that is unknown or already revoked.
// The HTTP client is oauth2's: the one in ctx under oauth2.HTTPClient, or
// http.DefaultClient.
func RevokeToken(ctx context.Context, baseURL, clientID, clientSecret, token string) error {
	form := url.Values{"token": {token}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(baseURL, "/")+"/oauth/revoke", strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("plugboard: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret))
	hc := http.DefaultClient
	if c, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && c != nil {
		hc = c
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("plugboard: revoking a token: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode == http.StatusOK {
		return nil
	}
	var oe struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &oe) == nil && oe.Error != "" {
		return &oauth2.RetrieveError{Response: res, Body: body, ErrorCode: oe.Error, ErrorDescription: oe.Description}
	}
	return &oauth2.RetrieveError{Response: res, Body: body}
}
