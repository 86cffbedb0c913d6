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
	// Routes are the Platform API routes ("GET /api/0/organizations/{org}/")
	// an installation token needs the scope for; they refuse a token
	// without it with 403 missing_scope. A scope with no routes is the
	// host's: its own API checks it, through introspection, and the event
	// types that declare it are delivered only to installations holding it
	// (docs/guides/scopes.md).
	Routes []string
}

// HostOnly reports whether no Platform API route uses the scope: the host
// product checks it on its own API.
func (sc Scope) HostOnly() bool { return len(sc.Routes) == 0 }

// BuiltinScopes are the Platform API's own scopes, each with the routes
// it opens to an installation token. installation:read and
// installation:write open none: an installation's own routes (GET and
// PUT /api/0/installations/{uuid}/, its config vars, a fresh code) answer
// its token without a scope, since installing needs them; the host checks
// them on its routes about the installation.
var BuiltinScopes = []Scope{
	{"org:read", "Read the organization's name and settings", true, []string{"GET /api/0/organizations/{org}/"}},
	{"org:write", "Change the organization's settings", true, []string{"PUT /api/0/organizations/{org}/"}},
	{"member:read", "See who belongs to the organization and their roles", true, []string{"GET /api/0/organizations/{org}/members/"}},
	{"member:write", "Add, change and remove members", true, []string{"POST /api/0/organizations/{org}/members/",
		"PUT /api/0/organizations/{org}/members/{member_id}/", "DELETE /api/0/organizations/{org}/members/{member_id}/"}},
	{"installation:read", "Read its own installation in the organization", true, nil},
	{"installation:write", "Verify and configure its own installation", true, nil},
	{"event:read", "Read the events published in the organization", true, []string{"GET /api/0/organizations/{org}/events/"}},
	{"event:write", "Publish events in the organization", true, []string{"POST /api/0/organizations/{org}/events/"}},
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
