package plugboard

import (
	"context"
	"net/http"
	"time"
)

// Suspension: an installation is suspended by an admin of its
// organization, by the app itself, or with the whole app by Plugboard's
// operators. While suspended its tokens are refused (401
// installation_suspended) and its webhooks wait, paused, except
// installation.suspended and installation.unsuspended; once lifted the
// same tokens work again and what waited is delivered, each with its
// original webhook-id (so a handler that drops duplicates by Event.ID
// keeps working).

// The events of suspension.
const (
	EventInstallationSuspended   = "installation.suspended"
	EventInstallationUnsuspended = "installation.unsuspended"
)

// Who suspended an installation (Suspension.By) and who may lift it
// (Suspension.LiftableBy).
const (
	SuspendedByOrganization  = "organization"   // an admin of the organization
	SuspendedByApp           = "app"            // the app itself
	SuspendedByOperator      = "operator"       // Plugboard's operators
	SuspendedByAppSuspension = "app_suspension" // the operators suspended the whole app
)

// Suspension is why and by whom an installation is suspended.
type Suspension struct {
	By            string    `json:"by"` // a SuspendedBy constant
	Reason        string    `json:"reason"`
	DateSuspended time.Time `json:"dateSuspended"`
	// LiftableBy lists who may lift it: "organization", "app", "operator".
	LiftableBy []string `json:"liftableBy,omitempty"`
}

// InstallationSuspended is the data of installation.suspended.
type InstallationSuspended struct {
	Installation EventInstallation `json:"installation"`
	Suspension   Suspension        `json:"suspension"`
}

// InstallationUnsuspended is the data of installation.unsuspended: the
// suspension that was lifted, and who lifted it.
type InstallationUnsuspended struct {
	Installation EventInstallation `json:"installation"`
	Suspension   Suspension        `json:"suspension"`
	LiftedBy     string            `json:"liftedBy"`
}

// InstallationSuspended decodes an installation.suspended event.
func (e *Event) InstallationSuspended() (*InstallationSuspended, error) {
	return decodeAs[InstallationSuspended](e, EventInstallationSuspended)
}

// InstallationUnsuspended decodes an installation.unsuspended event.
func (e *Event) InstallationUnsuspended() (*InstallationUnsuspended, error) {
	return decodeAs[InstallationUnsuspended](e, EventInstallationUnsuspended)
}

// SuspendInstallation suspends an installation, as the app itself (its
// own credentials, or the installation's token) or as an organization
// admin, with a reason the organization is shown ("" for none).
func (c *Client) SuspendInstallation(ctx context.Context, uuid, reason string) (*Installation, error) {
	var body any
	if reason != "" {
		body = map[string]string{"reason": reason}
	}
	var out Installation
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/installations/" + esc(uuid) + "/suspensions/", body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UnsuspendInstallation lifts an installation's suspension. The app lifts
// only its own (use its credentials: the installation's token is refused
// while suspended); an admin's suspension answers 403 not_suspender.
func (c *Client) UnsuspendInstallation(ctx context.Context, uuid string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/installations/" + esc(uuid) + "/suspensions/"}, nil)
	return err
}
