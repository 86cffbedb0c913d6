package marketplace

// Accounts signs users up and in, keeps their sessions and personal API
// tokens, and authenticates every kind of bearer credential.
type Accounts struct {
	*core
	tokens    *tokens
	hosts     *ServiceTokens
	oauth     *OAuth
	passwords *passwords
}

// Orgs are organizations, their members and their audit log.
type Orgs struct {
	*core
	installs *Installs
}

// Apps are partner apps, their plans, review and secrets, and the
// marketplace directory.
type Apps struct {
	*core
	events    *Events
	installs  *Installs
	orgs      *Orgs
	tokens    *tokens
	endpoints EndpointAdmin
	revisions *Revisions
	// suspensions is the kill switch review() pulls (suspensions.go).
	suspensions *Suspensions
}

// Installs are installations and their grants: installing, verifying,
// changing plan, uninstalling, and the installed-apps read models.
type Installs struct {
	*core
	tokens       *tokens
	events       *Events
	provisioning *Provisioning
}

// OAuth is the authorization server: consent, the token endpoint,
// revocation, client and app-JWT authentication, the signing keys.
type OAuth struct {
	*core
	events   *Events
	installs *Installs
	tokens   *tokens
}

// ServiceTokens are the host product's tokens.
type ServiceTokens struct {
	*core
	cache serviceTokenCache
}

// Events are the event catalogue and the host's publishing.
type Events struct {
	*core
	catalog EventCatalog
	// group coalesces concurrent single-event publishes (publish_group.go).
	group *publishGroup
}

// Deliveries is the partner's view of an app's webhooks: the delivery log,
// redelivery, test events, health and `plugboard listen`.
type Deliveries struct {
	*core
	installs   *Installs
	reconciler *Reconciler
	log        DeliveryLog
	endpoints  EndpointAdmin
	stream     DeliveryStream
}

// Operators are the operators' pages: the overview, the review queue, an
// app under review, the event catalogue and the reconciliation runs. To
// everyone else the pages are not there.
type Operators struct {
	*core
	apps       *Apps
	events     *Events
	reconciler *Reconciler
}

// tokens issues, finds and revokes installation tokens; OAuth, Installs and
// Apps share it.
type tokens struct {
	*core
}

// Revisions are the reviews of changes to what a published app may do
// (app_revisions.go) and the operators' queue of them.
type Revisions struct {
	*core
	apps        *Apps
	events      *Events
	permissions *Permissions
}

// Permissions are the permission requests approved revisions leave on
// installations, and their acceptance by organization admins
// (permission_requests.go).
type Permissions struct {
	*core
	installs *Installs
	events   *Events
}
