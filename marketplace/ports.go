package marketplace

import (
	"context"
	"encoding/json"
	"time"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/webhooks"
)

// The ports below are what the marketplace needs of the webhooks domain,
// declared here by their consumer; the composition root passes webhooks'
// types, tests may pass their own.

// Publisher writes events and their deliveries inside a transaction and
// enqueues them once it commits (webhooks.Outbox).
type Publisher interface {
	Transaction(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) error) error
	Publish(ctx context.Context, tx *gorm.DB, ev webhooks.NewEvent) (*webhooks.Event, error)
	// PublishMany publishes many events in one statement (batches).
	PublishMany(ctx context.Context, tx *gorm.DB, evs []webhooks.NewEvent) ([]webhooks.Published, error)
	// PublishTx is PublishMany in a transaction of its own, in fewer round
	// trips, with pre's query first (in the round trip of BEGIN).
	PublishTx(ctx context.Context, db *gorm.DB, pre webhooks.Prelude) ([]webhooks.Published, error)
}

// EventCatalog is the event catalogue (webhooks.Catalog).
type EventCatalog interface {
	List(ctx context.Context) ([]webhooks.EventType, error)
	Scopes(ctx context.Context) (map[string]string, error)
	Get(ctx context.Context, name string) (*webhooks.EventType, error)
	Create(ctx context.Context, tx *gorm.DB, n webhooks.NewEventType) (*webhooks.EventType, error)
	// Validate checks event data of a type: its depth, then its schema.
	Validate(et *webhooks.EventType, data json.RawMessage) error
}

// DeliveryLog reads an app's deliveries and their health.
type DeliveryLog interface {
	ListDeliveries(ctx context.Context, appID int64, dq webhooks.DeliveryQuery, r page.Request) (page.Page[webhooks.Delivery], error)
	GetDelivery(ctx context.Context, appID int64, id string) (*webhooks.DeliveryDetail, error)
	Stats(ctx context.Context, appID int64, since, until time.Time, resolution time.Duration) ([]webhooks.Bucket, webhooks.Bucket, error)
	// BucketStats is Stats without percentiles over the whole range.
	BucketStats(ctx context.Context, appID int64, since, until time.Time, resolution time.Duration) ([]webhooks.Bucket, webhooks.Bucket, error)
}

// EndpointAdmin manages an app's webhook endpoint (webhooks.Endpoints):
// its state and limits, replays, and the signer of its requests.
type EndpointAdmin interface {
	State(ctx context.Context, appID int64) (webhooks.EndpointState, error)
	Limits(st webhooks.EndpointState) (rate, inFlight int)
	Set(ctx context.Context, tx *gorm.DB, appID int64, status *string, reason string, rate, inFlight *int) error
	Redeliver(ctx context.Context, appID int64, ids []string) (int, error)
	RedeliverFailed(ctx context.Context, appID int64, since, until *time.Time) (int, error)
	Forget(appID int64)
	Signer(ctx context.Context, appID int64) (*webhooks.Signer, error)
	// HoldInstallation pauses a suspended installation's pending
	// deliveries; ReleaseInstallation replays its paused ones once the
	// suspension is lifted (suspensions.go). Both in the caller's tx.
	HoldInstallation(ctx context.Context, tx *gorm.DB, installationID int64) (int, error)
	ReleaseInstallation(ctx context.Context, tx *gorm.DB, appID, installationID int64) (int, error)
}

// SignedGetter sends the signed GETs reconciliation asks sync URLs with
// (webhooks.Sender).
type SignedGetter interface {
	SignedGet(ctx context.Context, signer *webhooks.Signer, rawURL string, limit int64) ([]byte, error)
}

// DeliveryStream copies an app's deliveries to `plugboard listen`.
type DeliveryStream interface {
	// Listen opens session for appID on behalf of owner ("user:7",
	// "app:3"), whose open sessions are capped.
	Listen(ctx context.Context, appID int64, owner, session string) (<-chan webhooks.Forwarded, error)
}

// PartnerCaller sends the signed calls to an app's provisioning endpoint
// that wait for the partner's answer (webhooks.Sender).
type PartnerCaller interface {
	Call(ctx context.Context, signer *webhooks.Signer, c webhooks.SignedCall) webhooks.CallResult
}
