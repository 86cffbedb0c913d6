package webhooks

import (
	"context"
	"encoding/json"
	"time"

	"gorm.io/gorm"
)

// Event is something that happened in an organization.
type Event struct {
	ID             int64
	UUID           string
	OrganizationID int64
	Type           string
	Data           json.RawMessage `gorm:"type:json"`
	// InstallationID targets a lifecycle event at one installation; nil for
	// events fanned out to every subscribed installation.
	InstallationID  *int64
	CreatedBy       string
	DeliveriesCount int
	// IdempotencyKey is the publisher's key (NewEvent.IdempotencyKey).
	IdempotencyKey *string
	// OrderingKey is the publisher's (NewEvent.OrderingKey).
	OrderingKey *string
	CreatedAt   time.Time
	// Replayed is set by Publish when the event's IdempotencyKey had been
	// used before: nothing was published, this is the first event.
	Replayed bool `gorm:"-"`
}

// NewEvent is the input of Publish.
type NewEvent struct {
	OrganizationID int64
	Type           string
	Data           any
	InstallationID int64 // lifecycle events: only this installation receives it
	// AppID sends the event to one app without an installation (webhook.test).
	AppID int64
	// HostEndpoints sends a platform event to these host endpoints, and to
	// nobody else (destinations.go).
	HostEndpoints []int64
	CreatedBy     string
	// IdempotencyKey, when set, makes publishing again with the same key in
	// the organization publish nothing: Publish answers the event the key
	// was first used for (Replayed), or, when the type or data differ, a
	// conflict (fault.IdempotencyKeyReused).
	IdempotencyKey string
	// OrderingKey, when set, has the event's deliveries wait for those of
	// earlier events with the same key in the organization: each app
	// receives them one at a time, in the order they were published. A
	// delivery waits while an earlier one of its key to its app is pending
	// (in flight, or waiting for a retry); one that failed for good or is
	// paused holds nothing back.
	OrderingKey string
	// Target sends the event's one delivery, to InstallationID of AppID,
	// somewhere other than the app's webhook URL (the deprovision DELETE
	// {provisionUrl}/{uuid}), still signed with the app's secret, retried,
	// logged and replayed like every delivery.
	Target *Target
}

// Target is where a delivery goes instead of a POST to the app's webhook URL.
type Target struct {
	Method           string // DELETE
	URL              string
	InstallationUUID string
}

// Recipient is an installation that receives an event.
type Recipient struct {
	AppID            int64
	InstallationID   int64
	InstallationUUID string
	// ListenOnly is an app without a webhook URL: its deliveries go to
	// `plugboard listen` sessions alone.
	ListenOnly bool
	// Paused stores the delivery paused instead of pending: its
	// installation is suspended (the marketplace's word), so nothing goes
	// out until the suspension is lifted, which replays it (holds.go).
	Paused bool
}

// Directory is what webhooks asks the marketplace: who receives an event,
// and where an app's endpoint is. app passes it to NewOutbox and
// NewEndpoints.
type Directory interface {
	// Recipients lists the live installations in orgID whose app subscribes
	// to eventType and holds scope; or, when installationID is set, that
	// installation alone if its app has a webhook URL.
	Recipients(ctx context.Context, tx *gorm.DB, orgID int64, eventType, scope string, installationID int64) ([]Recipient, error)
	// Endpoint returns where and how to deliver an app's webhooks; for a
	// host endpoint's key (HostKey), that host endpoint's.
	Endpoint(ctx context.Context, appID int64) (*Endpoint, error)
	// EndpointChanged is told when Endpoints.Disable disables an endpoint
	// (by hand, or as endpoint health decides), for the audit log.
	EndpointChanged(ctx context.Context, appID int64, status, reason string)
	// Held lists the installations of app appID whose deliveries stay
	// paused whatever happens to the endpoint (they are suspended):
	// re-enabling the endpoint and redelivering leave their deliveries
	// alone (holds.go). None for a host endpoint's key.
	Held(ctx context.Context, tx *gorm.DB, appID int64) ([]int64, error)
}

// ManyRecipients is a Directory that also answers for many organizations
// at once: the recipients of eventType in each of orgIDs, as Recipients
// answers for one (installationID 0). Outbox.PublishMany asks it once per
// event type of a batch.
type ManyRecipients interface {
	RecipientsOf(ctx context.Context, tx *gorm.DB, orgIDs []int64, eventType, scope string) (map[int64][]Recipient, error)
}

// Endpoint is a webhook destination: an app's, or a host endpoint's.
type Endpoint struct {
	AppID   int64 // the destination key (HostKey for a host endpoint)
	Slug    string
	URL     string
	Secrets []string // current first; the previous one while it overlaps
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
	DeliveryPaused    = "paused"
)

// Delivery is one event sent to one installation, with every try.
type Delivery struct {
	ID      int64
	UUID    string
	EventID int64
	// AppID or HostEndpointID is its destination; AppID is 0 for a host
	// endpoint's.
	AppID            int64
	HostEndpointID   *int64
	InstallationID   *int64
	InstallationUUID *string
	OrganizationID   int64
	EventType        string
	Status           string
	Attempts         int
	MaxAttempts      int
	NextAttemptAt    *time.Time
	ClaimedUntil     *time.Time
	EnqueuedAt       *time.Time
	LastAttemptAt    *time.Time
	LastStatusCode   *int
	LastErrorClass   string
	OrderingKey      *string
	CreatedAt        time.Time
	CompletedAt      *time.Time
}

// Attempt is one HTTP try of a delivery.
type Attempt struct {
	ID              int64
	DeliveryID      int64
	AppID           int64
	Number          int
	URL             string
	RequestHeaders  json.RawMessage `gorm:"type:json"`
	ResponseStatus  *int
	ResponseHeaders json.RawMessage `gorm:"type:json"`
	ResponseBody    string
	DurationUS      int64 `gorm:"column:duration_us"`
	ErrorClass      string
	ErrorMessage    string
	CreatedAt       time.Time
}
