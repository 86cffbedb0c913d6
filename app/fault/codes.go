package fault

import (
	"net/http"
	"sort"
)

// Code is a stable, snake_case error code: the code member of a problem
// document (and its /docs/problems anchor), or an RFC 6749 error. Every code
// is a constant below, registered with its status and documentation;
// TestEveryCodeIsRegistered (web) fails on a code used anywhere else.
type Code string

// Invalid input (400).
const (
	InvalidInput         Code = "invalid_input"
	MalformedJSON        Code = "malformed_json"
	UnsupportedMediaType Code = "unsupported_media_type"
	SchemaMismatch       Code = "schema_mismatch"
	BodyTooLarge         Code = "body_too_large"
	NoSession            Code = "no_session"
	InvalidEncoding      Code = "invalid_encoding"
	InvalidCursor        Code = "invalid_cursor"
	TooDeep              Code = "too_deep"
	SchemaTooLarge       Code = "schema_too_large"
	BatchTooLarge        Code = "batch_too_large"
)

// Credentials (401).
const (
	NotAuthenticated     Code = "not_authenticated"
	InvalidAuthorization Code = "invalid_authorization"
	CodeUnauthorized     Code = "unauthorized"
	InvalidToken         Code = "invalid_token"
	InvalidCredentials   Code = "invalid_credentials"
	// InstallationSuspended: the installation's tokens are refused while
	// it is suspended (marketplace/suspensions.go).
	InstallationSuspended Code = "installation_suspended"
	// HostTokenRequired: token introspection answers host service tokens only.
	HostTokenRequired Code = "host_token_required"
)

// Refusals (403).
const (
	CodeForbidden          Code = "forbidden"
	InsufficientRole       Code = "insufficient_role"
	OperatorOnly           Code = "operator_only"
	UsersOnly              Code = "users_only"
	AppOnly                Code = "app_only"
	AdminOnly              Code = "admin_only"
	NotOwner               Code = "not_owner"
	MissingScope           Code = "missing_scope"
	InstallationPending    Code = "installation_pending"
	AppCredentialsRequired Code = "app_credentials_required"
	CrossOrigin            Code = "cross_origin"
	CSRF                   Code = "csrf"
	InsufficientScope      Code = "insufficient_scope"
	NotSuspender           Code = "not_suspender"
)

// Absent (404) and wrong method (405).
const (
	CodeNotFound     Code = "not_found"
	MethodNotAllowed Code = "method_not_allowed"
)

// Conflicts with existing state (409).
const (
	CodeConflict        Code = "conflict"
	SlugTaken           Code = "slug_taken"
	EmailTaken          Code = "email_taken"
	NameTaken           Code = "name_taken"
	AppTaken            Code = "app_taken"
	AlreadyMember       Code = "already_member"
	AlreadyInstalled    Code = "already_installed"
	LastOwner           Code = "last_owner"
	LastPlan            Code = "last_plan"
	HasInstallations    Code = "has_installations"
	InstallationNotLive Code = "installation_not_live"
	InvalidTransition   Code = "invalid_transition"
	NotPublic           Code = "not_public"
	NoWebhookURL        Code = "no_webhook_url"
	NoSSOURL            Code = "no_sso_url"
	PlanChangeRefused   Code = "plan_change_refused"
	AlreadySuspended    Code = "already_suspended"
	AppSuspended        Code = "app_suspended"
	// App revisions and the permissions they ask of installations.
	NoPendingPermissions Code = "no_pending_permissions"
	PermissionsChanged   Code = "permissions_changed"
)

// Billing conflicts (409): plans, usage records and invoices (billing*.go).
const (
	PlanInUse                Code = "plan_in_use"
	IdempotencyKeyReused     Code = "idempotency_key_reused"
	BillingPeriodClosed      Code = "billing_period_closed"
	NotMetered               Code = "not_metered"
	InvalidInvoiceTransition Code = "invalid_invoice_transition"
)

// The partner's provisioning endpoint refused (400) or failed (502).
const (
	ProvisionRefused Code = "provision_refused"
	ProvisionFailed  Code = "provision_failed"
	PlanChangeFailed Code = "plan_change_failed"
)

// Limits and failures of ours (429, 5xx).
const (
	RateLimited    Code = "rate_limited"
	TooManyStreams Code = "too_many_streams"
	InternalError  Code = "internal_error"
	Unavailable    Code = "unavailable"
	Timeout        Code = "timeout"
	NotReady       Code = "not_ready"
)

// RFC 6749 errors (KindOAuth): the OAuth endpoints answer them as
// {"error", "error_description"}, the JSON API as problem documents.
const (
	InvalidRequest          Code = "invalid_request"
	InvalidClient           Code = "invalid_client"
	InvalidGrant            Code = "invalid_grant"
	UnauthorizedClient      Code = "unauthorized_client"
	UnsupportedGrantType    Code = "unsupported_grant_type"
	UnsupportedResponseType Code = "unsupported_response_type"
	InvalidScope            Code = "invalid_scope"
	AccessDenied            Code = "access_denied"
)

// Doc documents a code on /docs/problems.
type Doc struct {
	Code        Code
	Status      int  // the HTTP status it is answered with
	OAuth       bool // an RFC 6749 error code
	Title       string
	Description string
}

var registry = []Doc{
	{InvalidInput, http.StatusBadRequest, false, "Invalid input",
		"A field is missing or wrong. The fields member names each one (as a camelCase JSON path, or a query parameter) and says what is expected; fix them all and send the request again."},
	{MalformedJSON, http.StatusBadRequest, false, "Malformed JSON",
		"The body is not exactly one JSON value of the expected shape: it is empty, not valid JSON, holds more than one value, or is an array where an object is expected."},
	{UnsupportedMediaType, http.StatusUnsupportedMediaType, false, "Unsupported media type",
		"Send request bodies as application/json; a body with another Content-Type, or with none, is refused with 415 before it is read."},
	{SchemaMismatch, http.StatusBadRequest, false, "Event data does not match its schema",
		"An event's data does not match its event type's JSON Schema; fields names each failing JSON path and why. GET /api/0/event-types/ lists the schemas."},
	{BodyTooLarge, http.StatusRequestEntityTooLarge, false, "Body too large",
		"The request body is larger than this server accepts (PLUGBOARD_HTTP_BODY_LIMIT). Send less, or page through the resource instead."},
	{NoSession, http.StatusBadRequest, false, "No session to end",
		"Sign-out ends a browser or API session; an API token has no session. Revoke API tokens with DELETE /api/0/api-tokens/{token_id}/ instead."},
	{InvalidEncoding, http.StatusBadRequest, false, "NUL byte or invalid UTF-8",
		"A path parameter, query parameter, form field or JSON string (an object key or a value, event data included) holds a NUL character (a %00 byte, or \\u0000 in JSON), bytes that are not UTF-8, or a lone UTF-16 surrogate escape. Text is stored as UTF-8 and PostgreSQL holds no NUL, so such input is refused, never altered; fields names each one (a JSON path such as data.a.b, a query parameter or a path parameter)."},
	{InvalidCursor, http.StatusBadRequest, false, "Invalid cursor",
		"The cursor query parameter is not one this API returned for this list and sort order: cursors are signed and bound to the sortBy they were made with. Take cursors only from the Link header of the same list, and start again from the first page (no cursor) after changing sortBy or filters."},
	{TooDeep, http.StatusBadRequest, false, "Nested too deep",
		"A JSON value nests more objects and arrays than allowed: event data past PLUGBOARD_EVENTS_MAX_DEPTH levels (64 unless the operator changed it; data itself is level 1), or an event type's schema past 32 levels. fields names the path where the limit was crossed."},
	{SchemaTooLarge, http.StatusBadRequest, false, "Schema too large",
		"An event type's JSON Schema is larger than 64 KiB, or expands to more than 10,000 schema nodes once every $ref is followed (each node is a step in checking every event). Describe the event with a smaller schema."},
	{BatchTooLarge, http.StatusBadRequest, false, "Batch too large",
		"POST /api/0/event-batches/ takes 1 to 1,000 events; fields.events says how many were sent. Split a larger batch into several requests: each is written in one transaction of its own."},

	{NotAuthenticated, http.StatusUnauthorized, false, "Not authenticated",
		"The route needs a caller and none was recognised. Sign in, or send a token as Authorization: Bearer (an API token, an installation access token or an app JWT), or an app's client credentials as Basic."},
	{InvalidAuthorization, http.StatusUnauthorized, false, "Invalid Authorization header",
		"The Authorization header is neither Bearer <token> nor Basic with an app's client id and secret. Fix the header's scheme and format."},
	{CodeUnauthorized, http.StatusUnauthorized, false, "Unauthorized",
		"Credentials are missing or wrong. The WWW-Authenticate header says which scheme the route expects."},
	{InvalidToken, http.StatusUnauthorized, false, "Invalid token",
		"The token is invalid, expired or revoked: signing out, uninstalling and rotating revoke tokens, installation access tokens expire, and app JWTs need iat and may last at most ten minutes. Get a fresh token."},
	{InvalidCredentials, http.StatusUnauthorized, false, "Invalid credentials",
		"The email or password is wrong. The answer does not say which, so that it reveals nothing about which accounts exist."},
	{InstallationSuspended, http.StatusUnauthorized, false, "Installation suspended",
		"The installation is suspended, by an admin of its organization, by the app itself, or with the whole app by Plugboard's operators; detail gives the reason. Its access tokens are refused everywhere, /oauth/token issues none for it, the app cannot mint new ones (POST /api/0/installations/{uuid}/access-tokens/), introspection answers {\"active\": false} for them, and its webhooks wait, paused, except installation.suspended and installation.unsuspended. GET /api/0/installations/{uuid}/ with the app's own credentials shows the suspension and who may lift it (DELETE /api/0/installations/{uuid}/suspensions/); once lifted the same tokens work again."},
	{HostTokenRequired, http.StatusUnauthorized, false, "Host service token required",
		"Token introspection (POST /oauth/introspect, RFC 7662) answers only the host product, authenticated with a host service token (pbh_…) as Authorization: Bearer. Users, apps and installation tokens are refused with 401, as RFC 7662 §2.1 says; operators make service tokens with POST /api/0/service-tokens/."},

	{CodeForbidden, http.StatusForbidden, false, "Forbidden",
		"The caller is known but may not do this."},
	{InsufficientRole, http.StatusForbidden, false, "Insufficient role",
		"This needs a higher role in the organization (member, admin or owner, as the detail says). Ask an owner of the organization to change your role."},
	{OperatorOnly, http.StatusForbidden, false, "Operators only",
		"Only Plugboard's operators do this: publishing or rejecting apps, managing the event catalogue, service tokens and host-wide views."},
	{UsersOnly, http.StatusForbidden, false, "Users only",
		"This route is for users. App credentials, app JWTs, installation tokens and service tokens have routes of their own and cannot use it."},
	{AppOnly, http.StatusForbidden, false, "App only",
		"Only the app itself does this, with its own credentials or the installation's access token: verifying an installation, setting externalId and configUrl, or asking for a fresh code."},
	{AdminOnly, http.StatusForbidden, false, "Organization admins only",
		"Only the organization's admins (and owners) change an installation's plan, signed in as themselves; the app cannot, even with the installation's token."},
	{NotOwner, http.StatusForbidden, false, "Not the app's owner",
		"Only admins of the organization that owns the app change it. Operators see every app but review it only through its status."},
	{MissingScope, http.StatusForbidden, false, "Missing scope",
		"The installation was not granted the scope this needs (the WWW-Authenticate header says error=\"insufficient_scope\" and names it, per RFC 6750). A published app asks for a new scope with a revision (PUT /api/0/apps/{app_slug}/, then POST …/revisions/{revision_id}/publish-requests/); once an operator approves it, each organization accepts it (POST /api/0/installations/{uuid}/permission-acceptances/), and tokens issued after that carry it."},
	{InstallationPending, http.StatusForbidden, false, "Installation pending",
		"The app has not verified the installation yet. Verify it with PUT /api/0/installations/{uuid}/ {\"status\": \"installed\"} and try again."},
	{AppCredentialsRequired, http.StatusForbidden, false, "App credentials required",
		"Use the app's own credentials (client credentials or an app JWT), not an installation token, which only ever sees its own installation."},
	{CrossOrigin, http.StatusForbidden, false, "Cross-origin request",
		"Cookie-authenticated changes must come from Plugboard's own pages. Scripts and other sites use a token instead of the session cookie."},
	{CSRF, http.StatusForbidden, false, "Form expired",
		"The form's CSRF token is missing, expired or from another session. Go back, reload the page and send the form again."},
	{InsufficientScope, http.StatusForbidden, false, "Insufficient scope",
		"RFC 6750: the access token is valid but was not granted what the route needs. /oauth/userinfo answers only tokens whose authorization asked for the openid scope; the WWW-Authenticate header says error=\"insufficient_scope\"."},
	{NotSuspender, http.StatusForbidden, false, "Not the suspender",
		"Only whoever suspended an installation lifts the suspension, or an operator: a suspension by an organization admin is lifted by the organization's admins, never by the app; one by the app, by the app or the organization's admins; one by Plugboard's operators, by an operator. The installation's suspension.liftableBy says who may."},

	{CodeNotFound, http.StatusNotFound, false, "Not found",
		"Nothing is there, or the caller may not see it: resources of other organizations answer 404, not 403, so that their existence is not revealed."},
	{MethodNotAllowed, http.StatusMethodNotAllowed, false, "Method not allowed",
		"The path exists but does not take that method. The API reference lists each path's methods."},

	{CodeConflict, http.StatusConflict, false, "Conflict",
		"The request clashes with the current state of the resource. Read it again and retry."},
	{SlugTaken, http.StatusConflict, false, "Slug taken",
		"Another resource of its kind (organization, app, or plan of the app) has that slug; fields.slug says so. Choose another slug."},
	{EmailTaken, http.StatusConflict, false, "Email taken",
		"A user has signed up with that email already; fields.email says so. Sign in instead, or use another address."},
	{NameTaken, http.StatusConflict, false, "Name taken",
		"An event type with that name exists already; fields.name says so. Event type names are unique across the catalogue."},
	{AppTaken, http.StatusConflict, false, "Installed meanwhile",
		"Another request installed the app in the organization at the same moment; fields.app says so. List the organization's installations to find it."},
	{AlreadyMember, http.StatusConflict, false, "Already a member",
		"The user is already a member of the organization. Change their role instead."},
	{AlreadyInstalled, http.StatusConflict, false, "Already installed",
		"The app is installed in the organization already. The problem document carries the live installation as its installation member; uninstall it first, or change its plan."},
	{LastOwner, http.StatusConflict, false, "Last owner",
		"An organization keeps at least one owner: its last owner can neither be demoted nor leave. Make someone else owner first, or delete the organization."},
	{LastPlan, http.StatusConflict, false, "Last plan",
		"An app with plans keeps at least one, since installations are on a plan. Add another plan before deleting this one."},
	{HasInstallations, http.StatusConflict, false, "Still installed",
		"Organizations still have the app installed; they must uninstall it before it (or the organization that owns it) is deleted."},
	{InstallationNotLive, http.StatusConflict, false, "Installation not live",
		"The installation was deleted or failed, so it can no longer be changed, verified or given a fresh code."},
	{InvalidTransition, http.StatusConflict, false, "Invalid status transition",
		"The app's review status cannot change that way: only draft or rejected apps are submitted, and only submitted apps are published or rejected. Likewise for revisions: only a draft revision is submitted, and only a submitted one is approved or rejected."},
	{NotPublic, http.StatusConflict, false, "Internal app",
		"Internal apps are installed in their own organization when they are created; they are neither reviewed, published nor listed in the marketplace."},
	{NoWebhookURL, http.StatusConflict, false, "No webhook URL",
		"The app has no webhook URL, so there is nowhere to send deliveries to. Set webhookUrl on the app first."},
	{NoSSOURL, http.StatusConflict, false, "No single sign-on URL",
		"The app declares no ssoUrl, so there is nowhere to sign its users in to. The partner sets ssoUrl in the app's settings; until then \"Open {App}\" is not offered."},
	{PlanChangeRefused, http.StatusConflict, false, "Plan change refused",
		"The app's provisioning endpoint refused the new plan (it answered PUT {provisionUrl}/{uuid} with a 4xx); detail is the partner's message. The installation stays on its plan."},
	{AlreadySuspended, http.StatusConflict, false, "Already suspended",
		"The installation is suspended already, by someone whose suspension this caller cannot take over: the app cannot replace an organization admin's or an operator's suspension. Suspending again as the same suspender changes nothing (200); an organization admin takes over a suspension by the app or by the kill switch, and then only the organization lifts it."},
	{AppSuspended, http.StatusConflict, false, "App suspended",
		"Plugboard's operators suspended the app (the kill switch); detail gives their reason. It cannot be installed or authorized, and its installations stay suspended until an operator lifts the app's suspension (PUT /api/0/apps/{app_slug}/ {\"status\": \"published\"}), which lifts exactly the installations it suspended."},
	{NoPendingPermissions, http.StatusConflict, false, "No new permissions to accept",
		"The installation has no pending permission request: the app asks for nothing beyond what the organization granted, or an admin accepted it already. GET /api/0/organizations/{org}/installations/?permissions=pending lists the installations that wait."},
	{PermissionsChanged, http.StatusConflict, false, "Permissions changed",
		"The request named in the acceptance is no longer the pending one: a later approved revision of the app asked for more, or took something back. Read the installation's pendingPermissions again and accept what it shows now."},

	{PlanInUse, http.StatusConflict, false, "Plan in use",
		"Organizations have the plan installed: a plan with live installations cannot be deleted. Move them to another plan (or wait until they uninstall); to change what the plan costs, change its price, which applies from the next billing period."},
	{IdempotencyKeyReused, http.StatusConflict, false, "Idempotency key reused",
		"Something with this idempotencyKey exists already with other content: a usage record of the installation with a different quantity or timestamp, or an event published in the organization of another type, with other data or with another orderingKey. Nothing was written. Sending the same request again answers the first one (200, or status 200 in a batch's results); new content needs a key of its own."},
	{BillingPeriodClosed, http.StatusConflict, false, "Billing period closed",
		"The usage record's timestamp falls in a billing period that is closed: usage is taken for the open calendar month (UTC), and for the month before during the first hour of the next, until its invoices are written. fields.timestamp says so."},
	{NotMetered, http.StatusConflict, false, "Not a metered plan",
		"The installation was not on a per_unit plan at the record's timestamp, so there is nothing to meter: only per_unit plans take usage records."},
	{InvalidInvoiceTransition, http.StatusConflict, false, "Invalid invoice status change",
		"An invoice moves from open to paid, void or uncollectible, and from uncollectible to paid or void; paid and void invoices are final. The detail names the invoice's status."},

	{ProvisionRefused, http.StatusBadRequest, false, "Provisioning refused",
		"The app's provisioning endpoint refused to set the app up for this organization (it answered POST {provisionUrl} with a 4xx); detail is the partner's message, shown as it was given. Nothing was installed: no installation, code or token stays behind."},
	{ProvisionFailed, http.StatusBadGateway, false, "Provisioning failed",
		"The app's provisioning endpoint did not answer in time (PLUGBOARD_PROVISION_TIMEOUT), answered 5xx, or could not be reached; the reason member names the class (timeout, http_status, connection, tls, dns, blocked, invalid_answer). The installation failed, and Plugboard sends the partner a deprovision (DELETE {provisionUrl}/{uuid}) so that nothing it made is left over. Try again later."},
	{PlanChangeFailed, http.StatusBadGateway, false, "Plan change failed",
		"The app's provisioning endpoint did not answer the plan change in time, answered 5xx or could not be reached; the reason member names the class. The installation stays on its plan; try again later."},

	{RateLimited, http.StatusTooManyRequests, false, "Rate limited",
		"Too many requests: the caller's API budget (RateLimit-Policy says how large, RateLimit what is left) or its attempts at signing in, signing up or authenticating at the token endpoint are spent. Wait as the Retry-After header says, then try again; past a sign-in budget even the right password is refused until then."},
	{TooManyStreams, http.StatusTooManyRequests, false, "Too many delivery streams",
		"A user (or an app as itself) may keep a few delivery streams (GET …/delivery-stream/, plugboard listen) open at once, and an app a few more in all. Close one and try again; the Retry-After header says when the places of a server that stopped are let go."},
	{InternalError, http.StatusInternalServerError, false, "Internal error",
		"Something failed on our side. The problem's requestId finds it in our logs; quote it when you report the failure."},
	{Unavailable, http.StatusServiceUnavailable, false, "Unavailable",
		"A dependency is down; try again shortly."},
	{Timeout, http.StatusServiceUnavailable, false, "Timeout",
		"The request took too long and was abandoned; try again."},
	{NotReady, http.StatusServiceUnavailable, false, "Not ready",
		"A dependency (PostgreSQL or Redis) is unreachable, so the instance is not ready for traffic. The checks member says which answers and which does not."},

	{InvalidRequest, http.StatusBadRequest, true, "Invalid OAuth request",
		"RFC 6749: a required parameter (grant_type, code, refresh_token, token, client_id) is missing, or one is malformed, such as a redirect_uri other than the app's or a code_challenge_method other than S256, or the token endpoint's parameters were sent in the URL, where they are refused (§2.3.1): send client credentials with HTTP Basic and the rest in the form body."},
	{InvalidClient, http.StatusUnauthorized, true, "Invalid client",
		"RFC 6749: client authentication failed. The app's client id or secret is missing or wrong; send them as HTTP Basic or as client_id and client_secret form fields."},
	{InvalidGrant, http.StatusBadRequest, true, "Invalid grant",
		"RFC 6749: the code or refresh token is unknown, expired, used, revoked, or was issued to another client, installation or redirect URI, or the PKCE code_verifier does not match, or one is sent for a code issued without a code_challenge (RFC 9700 §2.1.1). Reusing a code or refresh token revokes what it gave."},
	{UnauthorizedClient, http.StatusBadRequest, true, "Unauthorized client",
		"RFC 6749: the app may not be authorized this way: internal integrations are not installed through OAuth, and unpublished apps only in their own organization."},
	{UnsupportedGrantType, http.StatusBadRequest, true, "Unsupported grant type",
		"RFC 6749: the grant_type is neither authorization_code nor refresh_token."},
	{UnsupportedResponseType, http.StatusBadRequest, true, "Unsupported response type",
		"RFC 6749: the authorize request's response_type is not code."},
	{InvalidScope, http.StatusBadRequest, true, "Invalid scope",
		"RFC 6749: the authorize request asks for a scope the app was not registered with, or, authorizing an existing installation again, one the installation was not granted; or a refresh asks for a scope its refresh token does not carry."},
	{AccessDenied, http.StatusBadRequest, true, "Access denied",
		"RFC 6749: the user declined to install the app on the consent page. Plugboard sends it to the app's redirect URL as the error parameter."},
}

var byCode = func() map[Code]Doc {
	m := make(map[Code]Doc, len(registry))
	for _, d := range registry {
		m[d.Code] = d
	}
	return m
}()

// Codes returns every registered code, sorted.
func Codes() []Doc {
	out := append([]Doc(nil), registry...)
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// Lookup returns code's documentation, if it is registered.
func Lookup(code Code) (Doc, bool) {
	d, ok := byCode[code]
	return d, ok
}
