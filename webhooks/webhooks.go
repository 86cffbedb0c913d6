// Package webhooks is Plugboard's event and delivery domain, one file per
// job:
//
//   - webhooks.go: the event catalogue (Catalog, EventType).
//   - events.go: events, deliveries, attempts and the Directory port.
//   - outbox.go: Outbox, which publishes events and their deliveries in the
//     caller's transaction (Publish, Transaction).
//   - drains.go: Drains, the drain registry in Redis and the only place that
//     enqueues drain tasks.
//   - store.go, log.go: Store, the claims and records of delivery batches,
//     the relay's and retention's statements, and the delivery log's read
//     model (ListDeliveries, GetDelivery, Stats).
//   - sender.go, headers.go, signing.go: Sender, the guarded HTTP client,
//     the Envelope, signed requests (Signer, NewSecret, SignedGet) and the
//     classification of failures.
//   - endpoints.go: Endpoints, endpoint state, health, limits and replay
//     (Set, Disable, Redeliver, RedeliverFailed) and the endpoint cache.
//   - limits.go: Limiter, rate limits and in-flight caps in Redis.
//   - dispatcher.go: Dispatcher, the worker that claims, sends and records.
//   - listen.go: Listeners, the hub of `plugboard listen` sessions.
//   - tasks.go: every asynq task and queue, Register and Schedule.
//   - metrics.go: the Prometheus series.
//
// It imports app/fault, app/page and app/secret, and never marketplace or
// echo: who receives an event, and where an app's endpoint is, it asks
// through Directory, which the composition root (app) passes in.
// marketplace, web and app import it.
package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
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

var (
	eventNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$`)
	scopeRe     = regexp.MustCompile(`^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$`)
)

// NewEventType is the input of Create.
type NewEventType struct {
	Name        string
	Resource    string
	Scope       string
	Description string
	Schema      json.RawMessage
}

// Create adds an event type to the catalogue.
func (c *Catalog) Create(ctx context.Context, tx *gorm.DB, n NewEventType) (*EventType, error) {
	f := fault.Fields{}
	f.Check(!eventNameRe.MatchString(n.Name), "name", "must look like resource.action, lower-case: issue.created")
	if n.Resource == "" && eventNameRe.MatchString(n.Name) {
		n.Resource = strings.SplitN(n.Name, ".", 2)[0]
	}
	f.Check(n.Resource != "" && !regexp.MustCompile(`^[a-z][a-z0-9_]*$`).MatchString(n.Resource), "resource", "must be lower-case letters, digits and underscores")
	f.Check(n.Scope == "", "scope", "is required: the scope an app needs to receive the event, such as issue:read")
	f.Check(n.Scope != "" && !scopeRe.MatchString(n.Scope), "scope", "must look like resource:read")
	f.Check(utf8.RuneCountInString(n.Description) > 1000, "description", "must be at most 1000 characters")
	if len(n.Schema) > 0 && string(n.Schema) != "null" {
		if _, err := compileSchema(n.Schema); err != nil {
			f.Add("schema", "is not a valid JSON Schema: "+err.Error())
		}
	} else {
		n.Schema = nil
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	et := &EventType{Name: n.Name, Resource: n.Resource, Scope: n.Scope, Description: n.Description, Schema: n.Schema, CreatedAt: time.Now().UTC()}
	if err := tx.WithContext(ctx).Create(et).Error; err != nil {
		var pg *pgconn.PgError
		if errors.As(err, &pg) && pg.Code == "23505" {
			return nil, &fault.Error{Kind: fault.KindConflict, Code: fault.NameTaken, Message: "That event type exists.", Fields: map[string]string{"name": "is already taken"}}
		}
		return nil, fmt.Errorf("creating event type: %w", err)
	}
	return et, nil
}

// Get returns one event type.
func (c *Catalog) Get(ctx context.Context, name string) (*EventType, error) {
	var et EventType
	err := c.db.WithContext(ctx).Where("name = ?", name).Take(&et).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fault.NotFound("event type")
	}
	if err != nil {
		return nil, fmt.Errorf("finding event type: %w", err)
	}
	return &et, nil
}

func compileSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	if err := comp.AddResource("event.json", doc); err != nil {
		return nil, err
	}
	return comp.Compile("event.json")
}

// ValidateData checks data against the event type's schema; the error names
// the failing path.
func (et *EventType) ValidateData(data json.RawMessage) error {
	if len(et.Schema) == 0 {
		return nil
	}
	sch, err := compileSchema(et.Schema)
	if err != nil {
		return fmt.Errorf("compiling schema of %s: %w", et.Name, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fault.Field("data", "is not JSON")
	}
	var ve *jsonschema.ValidationError
	if err := sch.Validate(inst); errors.As(err, &ve) {
		fields := map[string]string{}
		for _, leaf := range leaves(ve) {
			path := "data"
			for _, p := range leaf.InstanceLocation {
				path += "." + p
			}
			fields[path] = leaf.ErrorKind.LocalizedString(printer)
		}
		return fault.Invalid(fault.SchemaMismatch, fmt.Sprintf("data does not match the %s schema.", et.Name), fields)
	}
	return nil
}

var printer = message.NewPrinter(language.English)

func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}
