package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/marketplace"
)

// openPlatform builds the platform from the configuration without running
// any role, for the operator commands (users, event-types) that write
// through the marketplace's services straight to the database: they work
// on a fresh install, before any user or token exists. The caller closes
// it.
func openPlatform(ctx context.Context, getenv env) (*platform.App, error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return nil, err
	}
	return platform.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), platform.Roles{})
}

// cliOperator is the actor of the operator commands. Whoever runs the
// binary with the platform's configuration holds its database password
// and secret key, so it is trusted as an operator, as `users create
// --operator` already trusts it; the audit log names it "plugboard CLI".
func cliOperator() marketplace.Actor {
	return marketplace.Actor{User: &marketplace.User{Email: "plugboard CLI", Name: "plugboard CLI", IsOperator: true}}
}
