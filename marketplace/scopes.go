package marketplace

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/plugboard/plugboard/webhooks"
)

// Scope is a permission an app asks for.
type Scope struct {
	Name        string
	Description string
	// Builtin: a scope of the Platform API, which its routes check.
	// Otherwise the host declared it with an event type (issue:read): it
	// gates that event's deliveries, and the host's own API checks it in
	// the scope of a token's introspection (introspection.go,
	// docs/guides/host-api.md).
	Builtin bool
}

// BuiltinScopes are the Platform API's own scopes.
var BuiltinScopes = []Scope{
	{"org:read", "Read the organization's name and settings", true},
	{"org:write", "Change the organization's settings", true},
	{"member:read", "See who belongs to the organization and their roles", true},
	{"member:write", "Add, change and remove members", true},
	{"installation:read", "Read its own installation in the organization", true},
	{"installation:write", "Verify and configure its own installation", true},
	{"event:read", "Read the events published in the organization", true},
	{"event:write", "Publish events in the organization", true},
}

// Scopes returns the built-in scopes and those event types declare.
func (s *Events) Scopes(ctx context.Context) ([]Scope, error) {
	out := slices.Clone(BuiltinScopes)
	extra, err := s.catalog.Scopes(ctx)
	if err != nil {
		return nil, err
	}
	for name, desc := range extra {
		if !slices.ContainsFunc(out, func(sc Scope) bool { return sc.Name == name }) {
			out = append(out, Scope{Name: name, Description: desc})
		}
	}
	slices.SortFunc(out, func(a, b Scope) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// describeScopes gives each scope name its plain-words description; a name
// the catalogue does not know is described by itself.
func (s *Events) describeScopes(ctx context.Context, names []string) ([]Scope, error) {
	all, err := s.Scopes(ctx)
	if err != nil {
		return nil, fmt.Errorf("describing scopes: %w", err)
	}
	byName := make(map[string]Scope, len(all))
	for _, sc := range all {
		byName[sc.Name] = sc
	}
	out := make([]Scope, 0, len(names))
	for _, n := range names {
		sc, ok := byName[n]
		if !ok {
			sc = Scope{Name: n, Description: n}
		}
		out = append(out, sc)
	}
	return out, nil
}

// Catalogue is what an app's form offers: every scope and event type.
type Catalogue struct {
	Scopes     []Scope              // by name
	EventTypes []webhooks.EventType // by name
}

// Catalogue is the scopes and event types an app may ask for, for anyone
// signed in.
func (s *Events) Catalogue(ctx context.Context, a Actor) (*Catalogue, error) {
	types, err := s.ListEventTypes(ctx, a)
	if err != nil {
		return nil, err
	}
	scopes, err := s.Scopes(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing scopes: %w", err)
	}
	types = slices.Clone(types)
	slices.SortStableFunc(types, func(x, y webhooks.EventType) int { return strings.Compare(x.Name, y.Name) })
	return &Catalogue{Scopes: scopes, EventTypes: types}, nil
}

// describeEvents gives each event type name its catalogue entry; a name
// the catalogue does not know has only its name.
func describeEvents(all []webhooks.EventType, names []string) []webhooks.EventType {
	byName := make(map[string]webhooks.EventType, len(all))
	for _, t := range all {
		byName[t.Name] = t
	}
	out := make([]webhooks.EventType, 0, len(names))
	for _, n := range names {
		t, ok := byName[n]
		if !ok {
			t = webhooks.EventType{Name: n}
		}
		out = append(out, t)
	}
	return out
}
