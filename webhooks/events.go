package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Event is something that happened in an organization.
type Event struct {
	ID             int64
	UUID           string
	OrganizationID int64
	Type           string
	Data           json.RawMessage `gorm:"type:jsonb"`
	// InstallationID targets a lifecycle event at one installation; zero for
	// events fanned out to every subscribed installation.
	InstallationID *int64
	CreatedBy      string
	CreatedAt      time.Time
}

// NewEvent is the input of Publish.
type NewEvent struct {
	OrganizationID int64
	Type           string
	Data           any
	InstallationID int64 // for lifecycle events: only this installation receives it
	CreatedBy      string
}

// Outbox writes events inside the caller's transaction, so an event exists
// exactly when what caused it does.
type Outbox struct{}

// NewOutbox returns the outbox.
func NewOutbox() *Outbox { return &Outbox{} }

// Publish records ev in tx.
func (o *Outbox) Publish(ctx context.Context, tx *gorm.DB, ev NewEvent) (*Event, error) {
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return nil, fmt.Errorf("encoding %s data: %w", ev.Type, err)
	}
	e := &Event{UUID: uuid.NewString(), OrganizationID: ev.OrganizationID, Type: ev.Type, Data: data,
		CreatedBy: ev.CreatedBy, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if ev.InstallationID != 0 {
		e.InstallationID = &ev.InstallationID
	}
	if err := tx.WithContext(ctx).Create(e).Error; err != nil {
		return nil, fmt.Errorf("publishing %s: %w", ev.Type, err)
	}
	return e, nil
}
