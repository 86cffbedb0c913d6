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
//   - sweep.go: sweeps, which claim, send and record for many apps at once
//     when one event (or the relay) reaches hundreds of them.
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
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
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

// Limits of event type schemas, checked when a type is created: compiling
// a schema costs far more than its size suggests (1,000 levels took 5 s of
// CPU, 2,000 took 33 s), so deeper or larger ones are refused before they
// are compiled. Depth counts JSON objects and arrays; the outer object is
// level 1, and each level of "properties" takes two.
const (
	MaxSchemaBytes = 64 << 10
	MaxSchemaDepth = 32
)

// DefaultMaxDataDepth is how deep event data may nest unless Options say
// otherwise (PLUGBOARD_EVENTS_MAX_DEPTH).
const DefaultMaxDataDepth = 64

// Catalog reads the event catalogue and checks event data against it. It
// compiles each event type's schema once per process and keeps it until
// the type's schema changes.
type Catalog struct {
	db       *gorm.DB
	maxDepth int

	mu       sync.Mutex
	schemas  map[string]*compiled // by event type name
	compiles atomic.Int64         // how many schemas were compiled, for tests
	types    *ttlCache[EventType] // Get's, by name
}

// compiled is an event type's schema, compiled once.
type compiled struct {
	sum  [sha256.Size]byte // of the schema it was compiled from
	once sync.Once
	sch  *jsonschema.Schema
	err  error
}

// NewCatalog returns the catalogue on db; opts.MaxDataDepth bounds event
// data.
func NewCatalog(db *gorm.DB, opts Options) *Catalog {
	depth := opts.MaxDataDepth
	if depth <= 0 {
		depth = DefaultMaxDataDepth
	}
	return &Catalog{db: db, maxDepth: depth, schemas: map[string]*compiled{}, types: newTTLCache[EventType](catalogTTL)}
}

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
		if err := checkSchemaSize(n.Schema); err != nil {
			return nil, err
		}
		if err := checkSchemaRefs(n.Schema); err != nil {
			return nil, err
		}
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
	c.types.forget(n.Name)
	if err := tx.WithContext(ctx).Create(et).Error; err != nil {
		var pg *pgconn.PgError
		if errors.As(err, &pg) && pg.Code == "23505" {
			return nil, &fault.Error{Kind: fault.KindConflict, Code: fault.NameTaken, Message: "That event type exists.", Fields: map[string]string{"name": "is already taken"}}
		}
		return nil, fmt.Errorf("creating event type: %w", err)
	}
	return et, nil
}

// Get returns one event type, from a cache of catalogTTL: publishing reads
// it for every event.
func (c *Catalog) Get(ctx context.Context, name string) (*EventType, error) {
	if et, ok := c.types.get(name); ok {
		return &et, nil
	}
	var et EventType
	err := c.db.WithContext(ctx).Where("name = ?", name).Take(&et).Error
	if err == nil {
		c.types.put(name, et)
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fault.NotFound("event type")
	}
	if err != nil {
		return nil, fmt.Errorf("finding event type: %w", err)
	}
	return &et, nil
}

// checkSchemaSize refuses a schema over MaxSchemaBytes or MaxSchemaDepth,
// before anything compiles it.
func checkSchemaSize(raw json.RawMessage) error {
	if len(raw) > MaxSchemaBytes {
		return fault.Invalid(fault.SchemaTooLarge, fmt.Sprintf("The schema is larger than %d bytes.", MaxSchemaBytes),
			map[string]string{"schema": fmt.Sprintf("must be at most %d bytes (64 KiB), not %d", MaxSchemaBytes, len(raw))})
	}
	if _, ok := tooDeep(raw, MaxSchemaDepth); ok {
		return fault.Invalid(fault.TooDeep, fmt.Sprintf("The schema nests deeper than %d levels.", MaxSchemaDepth),
			map[string]string{"schema": fmt.Sprintf("must nest at most %d levels of objects and arrays", MaxSchemaDepth)})
	}
	return nil
}

// tooDeep reports whether the JSON in raw nests more than max objects and
// arrays (the outer value being level 1), and the JSON Pointer of the
// first one past the limit. It is one linear scan that stops there; JSON
// that does not parse is not too deep (the caller's decoder says what is
// wrong with it).
func tooDeep(raw []byte, max int) (jsontext.Pointer, bool) {
	dec := jsontext.NewDecoder(bytes.NewReader(raw), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	for {
		kind := dec.PeekKind()
		if kind == '{' || kind == '[' {
			if dec.StackDepth() >= max {
				// Read the opening token so the pointer names the value.
				if _, err := dec.ReadToken(); err != nil {
					return "", false
				}
				return dec.StackPointer(), true
			}
		}
		if _, err := dec.ReadToken(); err != nil {
			return "", false
		}
	}
}

// dataPath turns a JSON Pointer into data's dotted path: "data.a.0.b".
func dataPath(p jsontext.Pointer) string {
	out := "data"
	for tok := range p.Tokens() {
		out += "." + tok
	}
	return out
}

// schema returns et's schema compiled, compiling it on first use and
// again only once its schema changed.
func (c *Catalog) schema(et *EventType) (*jsonschema.Schema, error) {
	sum := sha256.Sum256(et.Schema)
	c.mu.Lock()
	e := c.schemas[et.Name]
	if e == nil || e.sum != sum {
		e = &compiled{sum: sum}
		c.schemas[et.Name] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		c.compiles.Add(1)
		e.sch, e.err = compileSchema(et.Schema)
	})
	return e.sch, e.err
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

// Validate checks event data of type et: first that it nests at most
// MaxDataDepth levels and holds no NUL character (jsonb cannot store
// \u0000; such data is refused, never altered), in one linear scan, then
// against the type's schema, compiled once per process. Each error names
// the failing path ("data.a.b").
func (c *Catalog) Validate(et *EventType, data json.RawMessage) error {
	if p, ok := tooDeep(data, c.maxDepth); ok {
		return fault.Invalid(fault.TooDeep, fmt.Sprintf("data nests deeper than %d levels.", c.maxDepth),
			map[string]string{dataPath(p): fmt.Sprintf("is past the limit of %d nested objects and arrays", c.maxDepth)})
	}
	if p, ok := nulString(data); ok {
		return fault.Invalid(fault.InvalidEncoding, "data holds a NUL character, which cannot be stored.",
			map[string]string{dataPath(p): "must not contain NUL bytes or invalid UTF-8"})
	}
	if len(et.Schema) == 0 {
		return nil
	}
	sch, err := c.schema(et)
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

// nulString finds a string (key or value) holding \u0000 in raw, and its
// JSON Pointer; only data with that escape at all is read token by token.
func nulString(raw []byte) (jsontext.Pointer, bool) {
	if !bytes.Contains(raw, []byte(`\u0000`)) {
		return "", false
	}
	dec := jsontext.NewDecoder(bytes.NewReader(raw), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return "", false
		}
		if tok.Kind() == '"' && strings.ContainsRune(tok.String(), 0) {
			return dec.StackPointer(), true
		}
	}
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
