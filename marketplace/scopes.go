package marketplace

import (
	"context"
	"slices"
	"strings"
)

// Scope is a permission an app asks for.
type Scope struct {
	Name        string
	Description string
	Builtin     bool
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
