// Package webhooks is Plugboard's event and delivery domain: the event
// catalogue, events, deliveries and attempts, signing, and (in the dispatcher
// issue) the asynq dispatcher, rate limits and endpoint health.
//
// It never imports marketplace or echo; where it needs to know who receives
// an event it asks through a small interface that app wires up. It imports
// the app/fault, app/page and app/secret helpers.
package webhooks

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// EventType is one entry of the event catalogue.
type EventType struct {
	ID          int64
	Name        string
	Resource    string
	Scope       string // the scope an app needs to receive it; "" for lifecycle events
	Description string
	Schema      []byte `gorm:"type:jsonb"`
	Builtin     bool
	CreatedAt   time.Time
}

// Catalog reads the event catalogue.
type Catalog struct{ db *gorm.DB }

// NewCatalog returns the catalogue on db.
func NewCatalog(db *gorm.DB) *Catalog { return &Catalog{db: db} }

// List returns every event type by name.
func (c *Catalog) List(ctx context.Context) ([]EventType, error) {
	var out []EventType
	if err := c.db.WithContext(ctx).Order("name").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("listing event types: %w", err)
	}
	return out, nil
}

// Scopes returns the distinct non-empty scopes event types declare.
func (c *Catalog) Scopes(ctx context.Context) (map[string]string, error) {
	var rows []EventType
	if err := c.db.WithContext(ctx).Where("scope <> ''").Order("name").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("listing event scopes: %w", err)
	}
	out := map[string]string{}
	for _, r := range rows {
		if _, ok := out[r.Scope]; !ok {
			out[r.Scope] = "Receive " + r.Resource + " events"
		}
	}
	return out, nil
}
