package plugboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// EventType is an entry of Plugboard's event catalogue: an event the host
// product publishes, the scope an app needs to receive it, and the JSON
// Schema its data satisfies.
type EventType struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"` // such as issue.created
	Resource    string          `json:"resource"`
	Scope       string          `json:"scope"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"` // a JSON Schema; null when the type has none
	Builtin     bool            `json:"builtin"`
	DateCreated time.Time       `json:"dateCreated"`
}

// PublishedEvent is an event the host published, as the API answers it.
type PublishedEvent struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Data       json.RawMessage `json:"data"`
	Deliveries int             `json:"deliveries"` // how many installations it goes to
	CreatedBy  string          `json:"createdBy"`
	// IdempotencyKey is the key it was published with, if any.
	IdempotencyKey *string `json:"idempotencyKey"`
	// OrderingKey is the ordering key it was published with, if any: its
	// deliveries reach each app after those of earlier events with the
	// same key in the organization.
	OrderingKey *string   `json:"orderingKey"`
	DateCreated time.Time `json:"dateCreated"`
}

// ListEventTypes returns the whole event catalogue. It needs a signed-in
// user's token.
func (c *Client) ListEventTypes(ctx context.Context) ([]EventType, error) {
	var out []EventType
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/event-types/"}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// PublishEvent publishes an event of eventType in the organization org
// (slug or id): every installation subscribed to it gets a delivery. data
// is the event's data, encoded as JSON (a json.RawMessage goes as it is);
// it must satisfy the type's schema. It needs the host's service token or
// a token of one of the organization's users.
func (c *Client) PublishEvent(ctx context.Context, org, eventType string, data any) (*PublishedEvent, error) {
	raw, ok := data.(json.RawMessage)
	if !ok {
		b, err := json.Marshal(data)
		if err != nil {
			return nil, fmt.Errorf("plugboard: encoding the data of %s: %w", eventType, err)
		}
		raw = b
	}
	var out PublishedEvent
	body := map[string]any{"type": eventType, "data": raw}
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/organizations/" + esc(org) + "/events/", body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
