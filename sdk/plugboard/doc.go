// Package plugboard is the Go SDK for partners who build apps on Plugboard,
// an integration marketplace: it receives an app's webhooks, takes it
// through the OAuth install, and calls the partner API; and it gives the
// host product the middleware that accepts installation tokens on its own
// API.
//
// It is a Go module of its own, github.com/plugboard/plugboard/sdk/plugboard,
// that depends only on the standard library, golang.org/x/oauth2 and
// github.com/golang-jwt/jwt/v5 (which checks sign-on tokens and signs app
// JWTs): any program may import it, and it imports nothing of the
// platform. Inside Plugboard's repository the plugboard command
// (cmd/plugboard), examples/partner and examples/host use it; sdk/e2e
// tests it against the whole platform.
//
// # Webhooks
//
// Plugboard signs every webhook per Standard Webhooks: webhook-id (stable
// across retries), webhook-timestamp and webhook-signature, "v1,<base64
// HMAC-SHA256 of id.timestamp.body>" under the app's whsec_ secret, with two
// signatures while a secret rotates. [Handler] verifies, decodes and
// dispatches them; [Verify] and [Verifier] check a request by hand, and
// [Sign] makes one for tests. The body is an [Event] envelope; its typed
// decoders read Plugboard's own events (installation.created, .updated,
// .deleted and webhook.test), and [Event.DecodeData] the host product's.
//
//	secret := os.Getenv("PLUGBOARD_WEBHOOK_SECRET") // whsec_…
//	http.Handle("/plugboard/webhooks", plugboard.Handler(secret, func(ctx context.Context, ev *plugboard.Event) error {
//		switch ev.Type {
//		case plugboard.EventInstallationCreated:
//			created, err := ev.InstallationCreated()
//			if err != nil {
//				return err
//			}
//			tok, err := oauthConfig.Exchange(ctx, created.Code)
//			if err != nil {
//				return err // answered 500: Plugboard retries
//			}
//			return store.SaveInstallation(ctx, plugboard.InstallationID(tok), created.Installation.Organization, tok)
//		case plugboard.EventInstallationDeleted:
//			return store.DeleteInstallation(ctx, ev.InstallationUUID())
//		}
//		return nil // answered 204
//	}))
//
// # Installing
//
// [OAuth2Config] is an [golang.org/x/oauth2.Config] for Plugboard's token
// endpoint: Exchange turns an install code into the installation's tokens,
// TokenSource refreshes them, and [InstallationID] says which installation
// a token acts for. [RevokeToken] revokes one.
//
// Or store no installation token at all: [AppTokenSource] mints one when
// it is needed, from the app's own credentials ([AppAuth]: the client
// secret, or a key that signs app JWTs), eight hours long and optionally
// narrowed to some of the installation's scopes, and keeps it until a
// minute before it expires:
//
//	auth := plugboard.AppAuth{BaseURL: "https://plugboard.example.com", ClientID: clientID, ClientSecret: clientSecret}
//	hc := oauth2.NewClient(ctx, plugboard.AppTokenSource(auth, installationUUID, "issue:read"))
//	res, err := hc.Get("https://api.host.example/api/issues") // the host's own API
//
// # The host's API
//
// The host product checks the installation tokens partners send to its
// own API by introspection (RFC 7662): [RequireScopes] wraps its handlers,
// asks an [Introspector] (the host's service token; active answers kept at
// most a second, so a revoked token stops within it), refuses with RFC
// 6750 challenges (401 inactive, 403 insufficient_scope), and hands the
// handler the token's organization ([IntrospectionFrom]):
//
//	in := plugboard.NewIntrospector("https://plugboard.example.com", serviceToken)
//	http.Handle("GET /api/issues", plugboard.RequireScopes(in, "issue:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//		t, _ := plugboard.IntrospectionFrom(r.Context())
//		writeIssues(w, t.Organization.ID) // that organization's, and only its
//	})))
//
// # Single sign-on
//
// An app that declares an ssoUrl gets an "Open {App}" button on the
// installed-app pages of every organization that installed it. A member's
// click sends the browser to ssoUrl with a form POST whose token field is
// a one-minute EdDSA JWT under the platform's /.well-known/jwks.json: iss
// the platform's base URL, aud the app's client id, sub the user's id, and
// email, name, org, installation, role and a unique jti. [SSOVerifier]
// checks all of it and that the jti was not used before ([SeenStore]; a
// [MemorySeenStore] by default, a shared store when the partner runs more
// than one instance); its Handler is the ssoUrl:
//
//	sso := plugboard.NewSSOVerifier("https://plugboard.example.com", clientID)
//	http.Handle("POST /plugboard/sso", sso.Handler(func(w http.ResponseWriter, r *http.Request, c *plugboard.SSOClaims) {
//		startSession(w, c.Installation, c.UserID, c.Name) // the partner's own cookie
//		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
//	}))
//
// For "Sign in with Plugboard" on the partner's own site, use any OpenID
// Connect library with the platform's base URL as the issuer: Plugboard's
// /oauth/authorize takes the openid, email and profile scopes.
//
// # Provisioning
//
// An app that declares a provisionUrl is an add-on in Heroku's manner:
// installing POSTs a [ProvisionRequest] there (signed like a webhook, with
// Idempotency-Key the installation's uuid) and waits up to 25 s for the
// answer; plan changes PUT a [PlanChangeRequest] to {provisionUrl}/{uuid};
// uninstalling DELETEs {provisionUrl}/{uuid}, retried like a webhook.
// [ProvisionHandler] verifies each request and calls a [Provisioner]:
// answer with config vars (or Async, then [Client.SetConfigVars] and
// [Client.CompleteProvisioning] with the installation's token), or
// [Refuse] with a message the organization's admin reads.
//
//	http.Handle("/plugboard/provision/", plugboard.ProvisionHandler(secret, myProvisioner))
//	http.Handle("/plugboard/provision", plugboard.ProvisionHandler(secret, myProvisioner))
//
//	func (p *provisioner) Provision(ctx context.Context, r *plugboard.ProvisionRequest) (*plugboard.ProvisionResult, error) {
//		acct, err := p.accounts.FindOrCreate(ctx, r.Installation.UUID, r.Organization.Slug) // idempotent
//		if err != nil {
//			return nil, err // 500: the install fails, and a Deprovision follows
//		}
//		return &plugboard.ProvisionResult{Message: "Ready.",
//			Config: plugboard.Vars(map[string]string{"ACME_ALERTS_URL": acct.URL})}, nil
//	}
//
// # The API
//
// [Client] calls the partner routes of /api/0/: an app's installations,
// its delivery log, redeliveries, test events, webhook health and
// reconciliation runs, as the app itself ([WithClientCredentials]) or with
// an installation's token ([WithToken], [WithTokenSource]). With a user's
// token it also follows an app's delivery stream
// ([Client.StreamDeliveries], what `plugboard listen` forwards), reads the
// event catalogue and publishes events ([Client.PublishEvent]). Lists return a
// [Page] read from the Link header, and the All… methods iterate over every
// page. Errors the API answers are [*APIError]s with the problem document's
// stable Code.
//
//	c, err := plugboard.NewClient("https://plugboard.example.com",
//		plugboard.WithClientCredentials(clientID, clientSecret))
//	if err != nil {
//		return err
//	}
//	for inst, err := range c.AllInstallations(ctx, "acme-alerts", plugboard.ListOptions{SyncState: plugboard.OutOfSync}) {
//		if err != nil {
//			return err
//		}
//		if inst.SyncReason == plugboard.SyncReasonNeverExchanged {
//			if _, err := c.RequestGrant(ctx, inst.UUID); err != nil {
//				return err
//			}
//		}
//	}
//	var apiErr *plugboard.APIError
//	if _, err := c.GetInstallation(ctx, uuid); errors.As(err, &apiErr) && apiErr.Code == "not_found" {
//		// …
//	}
package plugboard
