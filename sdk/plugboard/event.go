package plugboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Event types Plugboard itself sends. Host events (issue.created and the
// like) are whatever the host product publishes; see GET /api/0/event-types/.
const (
	EventInstallationCreated = "installation.created"
	EventInstallationUpdated = "installation.updated"
	EventInstallationDeleted = "installation.deleted"
	EventWebhookTest         = "webhook.test"
)

// EventInstallationPermissionsAccepted: the organization accepted what an
// approved revision of the app asked; data is {installation, scopes,
// events}, scopes and events being what it gained.
const EventInstallationPermissionsAccepted = "installation.permissions_accepted"

// Reasons an installation.deleted event gives.
const (
	ReasonUninstalled         = "uninstalled"          // an organization admin, the app or its token uninstalled it
	ReasonOrganizationDeleted = "organization_deleted" // the organization was deleted
	ReasonVerificationTimeout = "verification_timeout" // the app did not verify a pending install in time
	ReasonDeletedInPlugboard  = "deleted_in_plugboard" // resent by reconciliation: the app still lists an ended installation
	ReasonUnknownToPlugboard  = "unknown_to_plugboard" // reconciliation: the app lists a uuid Plugboard never had
)

// ErrInvalidEvent is wrapped by the errors of [ParseEvent] for a body that is
// not a Plugboard webhook envelope.
var ErrInvalidEvent = errors.New("plugboard: not a webhook envelope")

// ErrWrongEventType is wrapped by the typed decoders of [Event] when the
// event is of another type.
var ErrWrongEventType = errors.New("plugboard: wrong event type")

// Event is the body of every webhook Plugboard sends (the envelope).
type Event struct {
	// ID is the delivery's id: the webhook-id header, stable across retries
	// and redeliveries, so the key to drop duplicates by.
	ID string `json:"id"`
	// Type is the event type, such as "installation.created" or "issue.created".
	Type string `json:"type"`
	// Timestamp is when the event happened (not when this attempt was sent).
	Timestamp time.Time `json:"timestamp"`
	// Installation is the installation the event is for; nil for webhook.test.
	Installation *InstallationRef `json:"installation"`
	// Data is the event's data, as published; decode it with DecodeData or,
	// for Plugboard's own events, the typed decoders.
	Data json.RawMessage `json:"data"`
}

// InstallationRef names an installation in an envelope.
type InstallationRef struct {
	UUID string `json:"uuid"`
}

// ParseEvent decodes a webhook body into an Event. It checks the shape only;
// verify the signature first (see [Verify], or use [Handler] for both).
func ParseEvent(body []byte) (*Event, error) {
	var ev Event
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&ev); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalidEvent)
	}
	if ev.ID == "" || ev.Type == "" {
		return nil, fmt.Errorf("%w: id and type are required", ErrInvalidEvent)
	}
	if ev.Installation != nil && ev.Installation.UUID == "" {
		return nil, fmt.Errorf("%w: installation without a uuid", ErrInvalidEvent)
	}
	if len(ev.Data) == 0 || string(ev.Data) == "null" {
		ev.Data = json.RawMessage("{}")
	}
	return &ev, nil
}

// InstallationUUID is the uuid of the event's installation, "" when none.
func (e *Event) InstallationUUID() string {
	if e.Installation == nil {
		return ""
	}
	return e.Installation.UUID
}

// DecodeData decodes the event's data into v.
func (e *Event) DecodeData(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("plugboard: decoding the data of %s: %w", e.Type, err)
	}
	return nil
}

func decodeAs[T any](e *Event, typ string) (*T, error) {
	if e.Type != typ {
		return nil, fmt.Errorf("%w: the event is %s, not %s", ErrWrongEventType, e.Type, typ)
	}
	out := new(T)
	if err := e.DecodeData(out); err != nil {
		return nil, err
	}
	return out, nil
}

// InstallationCreated decodes an installation.created event; an error
// wrapping ErrWrongEventType for any other type.
func (e *Event) InstallationCreated() (*InstallationCreated, error) {
	return decodeAs[InstallationCreated](e, EventInstallationCreated)
}

// InstallationUpdated decodes an installation.updated event.
func (e *Event) InstallationUpdated() (*InstallationUpdated, error) {
	return decodeAs[InstallationUpdated](e, EventInstallationUpdated)
}

// InstallationDeleted decodes an installation.deleted event.
func (e *Event) InstallationDeleted() (*InstallationDeleted, error) {
	return decodeAs[InstallationDeleted](e, EventInstallationDeleted)
}

// WebhookTest decodes a webhook.test event.
func (e *Event) WebhookTest() (*WebhookTest, error) {
	return decodeAs[WebhookTest](e, EventWebhookTest)
}

// EventInstallation is the installation as lifecycle events describe it: a
// smaller shape than the API's [Installation] (no dates, no sync state), and
// its app carries the client id rather than the numeric id.
type EventInstallation struct {
	UUID         string             `json:"uuid"`
	Status       InstallationStatus `json:"status"`
	Scopes       []string           `json:"scopes"`
	App          AppRef             `json:"app"`
	Organization OrganizationRef    `json:"organization"`
	// Plan is nil for an app without plans.
	Plan *PlanRef `json:"plan"`
}

// InstallationCreated is the data of installation.created: an organization
// installed the app. Exchange Code for tokens (see [OAuth2Config]) before
// CodeExpiresAt; an app that verifies installs then confirms with
// [Client.VerifyInstallation].
type InstallationCreated struct {
	Installation EventInstallation `json:"installation"`
	// Code is the single-use authorization code (pbg_…). Empty for internal
	// integrations, which get their token when they are created.
	Code string `json:"code"`
	// CodeExpiresAt is when Code stops working; zero when there is no code.
	CodeExpiresAt time.Time `json:"codeExpiresAt"`
	// Resent is true when reconciliation sent the event again with a fresh
	// code (the first was never exchanged, or the app did not know the
	// installation).
	Resent bool `json:"resent"`
}

// InstallationUpdated is the data of installation.updated: the organization
// changed plan. Installation.Plan is the new plan.
type InstallationUpdated struct {
	Installation EventInstallation `json:"installation"`
	// PreviousPlan is the plan before; nil if there was none.
	PreviousPlan *PlanRef `json:"previousPlan"`
}

// InstallationDeleted is the data of installation.deleted: the installation
// ended and its tokens no longer work.
//
// With Reason ReasonUnknownToPlugboard (the app's sync URL listed a uuid
// Plugboard does not know) Installation carries only its UUID, and the
// envelope's Installation is nil: read the uuid from here.
type InstallationDeleted struct {
	Installation EventInstallation `json:"installation"`
	// Reason is why, one of the Reason constants (others may be added).
	Reason string `json:"reason"`
	// Resent is true when reconciliation sent it again because the app
	// still listed the installation.
	Resent bool `json:"resent"`
}

// WebhookTest is the data of webhook.test, sent by [Client.SendTestEvent]
// outside any installation.
type WebhookTest struct {
	Message string `json:"message"`
	App     struct {
		Slug string `json:"slug"`
	} `json:"app"`
}
