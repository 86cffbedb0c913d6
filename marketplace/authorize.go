package marketplace

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
)

// AuthorizeRequest is GET /oauth/authorize's query.
type AuthorizeRequest struct {
	ResponseType        string
	ClientID            string
	RedirectURI         string
	Scope               string
	State               string
	CodeChallenge       string
	CodeChallengeMethod string
	Nonce               string // OpenID Connect: echoed in the id_token (oidc.go)
}

// Authorize failures are fault.OAuth errors. One that may be sent back to
// the client carries the app's registered redirect URI as its
// DetailRedirectURI; one without it (the client or redirect URI cannot be
// trusted) is shown, never redirected.
const DetailRedirectURI = "redirect_uri"

// Consent is what the consent page shows.
type Consent struct {
	App         *App
	Plans       []Plan
	Orgs        []OrgAccess // where the user may install (admin or owner)
	RedirectURI string
	Scopes      []Scope // what the token will carry: the requested scopes, or all the app's
	// Requested are the scopes the request named, in the app's order; nil
	// when it named none, which asks for all the app's.
	Requested []string
}

var challengeRe = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// PrepareAuthorize validates an authorize request for a signed-in user.
func (s *OAuth) PrepareAuthorize(ctx context.Context, a Actor, r AuthorizeRequest) (*Consent, error) {
	if r.ClientID == "" {
		return nil, fault.OAuth(fault.InvalidRequest, "client_id is required.")
	}
	var app App
	err := s.db.WithContext(ctx).Preload("Organization").Where("client_id = ?", r.ClientID).First(&app).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fault.OAuth(fault.InvalidClient, "No app has this client_id.")
	}
	if err != nil {
		return nil, fmt.Errorf("finding client: %w", err)
	}
	if app.RedirectURL == "" || (r.RedirectURI != "" && r.RedirectURI != app.RedirectURL) {
		return nil, fault.OAuth(fault.InvalidRequest, "redirect_uri does not match the app's registered redirect URL.")
	}
	fail := func(code fault.Code, desc string) error {
		return fault.OAuth(code, desc).With(DetailRedirectURI, app.RedirectURL)
	}
	if app.Kind != KindPublic {
		return nil, fail(fault.UnauthorizedClient, "Internal integrations are not installed through OAuth.")
	}
	if app.Status == StatusSuspended { // the kill switch (suspensions.go)
		return nil, fail(fault.UnauthorizedClient, "Plugboard's operators suspended the app: it cannot be installed or authorized.")
	}
	if r.ResponseType != "code" {
		return nil, fail(fault.UnsupportedResponseType, "response_type must be code.")
	}
	if r.CodeChallenge != "" || r.CodeChallengeMethod != "" {
		if r.CodeChallengeMethod != "S256" {
			return nil, fail(fault.InvalidRequest, "code_challenge_method must be S256.")
		}
		if !challengeRe.MatchString(r.CodeChallenge) {
			return nil, fail(fault.InvalidRequest, "code_challenge must be the base64url SHA-256 of the verifier.")
		}
	}
	for _, sc := range installationScopes(r.Scope) { // identity scopes need no declaring (oidc.go)
		if !slices.Contains(app.Scopes, sc) {
			return nil, fail(fault.InvalidScope, fmt.Sprintf("The app was registered without the %s scope.", sc))
		}
	}
	if desc := checkNonce(r.Nonce); desc != "" {
		return nil, fail(fault.InvalidRequest, desc)
	}
	requested := requestedScopes(app.Scopes, r.Scope)
	if err := requireUser(a); err != nil {
		return nil, err
	}
	c := &Consent{App: &app, RedirectURI: app.RedirectURL, Requested: requested}
	if err := s.db.WithContext(ctx).Where("app_id = ?", app.ID).Order("price, id").Find(&c.Plans).Error; err != nil {
		return nil, fmt.Errorf("loading plans: %w", err)
	}
	type row struct {
		Organization
		Role string
	}
	var rows []row
	if err := s.db.WithContext(ctx).Table("organizations").Select("organizations.*, memberships.role").
		Joins("JOIN memberships ON memberships.organization_id = organizations.id").
		Where("memberships.user_id = ? AND memberships.role IN ?", a.User.ID, []string{RoleOwner, RoleAdmin}).
		Order("organizations.slug").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("listing organizations: %w", err)
	}
	for _, r := range rows {
		if app.Status == StatusPublished || r.ID == app.OrganizationID {
			c.Orgs = append(c.Orgs, OrgAccess{Org: r.Organization, Role: r.Role})
		}
	}
	all, err := s.events.Scopes(ctx)
	if err != nil {
		return nil, err
	}
	for _, sc := range all {
		if slices.Contains(app.Scopes, sc.Name) && (requested == nil || slices.Contains(requested, sc.Name)) {
			c.Scopes = append(c.Scopes, sc)
		}
	}
	if app.Status != StatusPublished && len(c.Orgs) == 0 {
		return nil, fail(fault.UnauthorizedClient, "The app is not published.")
	}
	return c, nil
}

// requestedScopes returns the installation scopes a request's scope
// parameter names (identity scopes aside), once each and in the app's
// order, or nil when it names none (which asks for all of them). Each is
// one of the app's: PrepareAuthorize checks that first.
func requestedScopes(appScopes []string, scope string) []string {
	names := installationScopes(scope)
	if len(names) == 0 {
		return nil
	}
	out := []string{}
	for _, sc := range appScopes {
		if slices.Contains(names, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// Approval is the consent form's answer.
type Approval struct {
	AuthorizeRequest
	Org  string
	Plan string
}

// Approve installs the app into the chosen organization (or, when it is
// installed already, issues a fresh code for that installation) and returns
// the URL to redirect the browser to.
func (s *OAuth) Approve(ctx context.Context, a Actor, ap Approval) (string, error) {
	consent, err := s.PrepareAuthorize(ctx, a, ap.AuthorizeRequest)
	if err != nil {
		return "", err
	}
	var code string
	var inst *Installation
	var fresh *NewInstallation // a new installation, which a provisioned app is asked about
	var orgSlug string
	err = s.publishTx(ctx, func(tx *gorm.DB) error {
		acc, err := s.access(ctx, tx, a, ap.Org, RoleAdmin)
		if err != nil {
			return fault.Field("org", "choose an organization where you are an admin")
		}
		orgSlug = acc.Org.Slug
		g := grantOptions{RedirectURI: ap.RedirectURI, CodeChallenge: ap.CodeChallenge, CodeChallengeMethod: ap.CodeChallengeMethod,
			Scopes: consent.Requested}
		if g.Identity, err = s.identityFor(ctx, tx, a, ap.AuthorizeRequest); err != nil {
			return err
		}
		app, plan, err := s.installs.installable(ctx, tx, a, acc.Org, idStr(consent.App.ID), ap.Plan)
		if err != nil {
			return err
		}
		res, err := s.installs.install(ctx, tx, a, acc.Org, app, plan, g)
		if live, ok := ExistingInstallation(err); ok {
			// A fresh code for what the installation was granted, never more.
			for _, sc := range g.Scopes {
				if !slices.Contains(live.Scopes, sc) {
					return fault.OAuth(fault.InvalidScope, fmt.Sprintf("The installation in %s was not granted the %s scope.", acc.Org.Slug, sc)).
						With(DetailRedirectURI, consent.RedirectURI)
				}
			}
			inst = live
			code, _, err = s.installs.newGrant(ctx, tx, inst.ID, g)
			if err != nil {
				return err
			}
			return s.audit(tx, a, &acc.Org.ID, "installation.reauthorize", "installation", inst.UUID, app.Slug, nil)
		}
		if err != nil {
			return err
		}
		inst, code, fresh = res.Installation, res.Code, res
		return nil
	})
	if err == nil && fresh != nil && fresh.Installation.Status == InstallProvisioning {
		err = s.installs.provisioning.provision(ctx, a, fresh)
	}
	if err != nil {
		return "", err
	}
	return AuthorizeRedirect(consent.RedirectURI, map[string]string{"code": code, "state": ap.State,
		"installationId": inst.UUID, "orgSlug": orgSlug}), nil
}

// Deny returns the redirect that tells the client the user said no.
func (s *OAuth) Deny(ctx context.Context, a Actor, r AuthorizeRequest) (string, error) {
	consent, err := s.PrepareAuthorize(ctx, a, r)
	if err != nil {
		return "", err
	}
	return AuthorizeRedirect(consent.RedirectURI, map[string]string{"error": string(fault.AccessDenied),
		"error_description": "The user denied the request.", "state": r.State}), nil
}

// AuthorizeRedirect adds params (empty ones left out) to a redirect URI.
func AuthorizeRedirect(redirectURI string, params map[string]string) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return redirectURI
	}
	q := u.Query()
	for k, v := range params {
		if v != "" {
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}
