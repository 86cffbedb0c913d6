package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/marketplace"
)

func cmdUsers(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
	if len(args) == 0 || args[0] != "create" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			fmt.Fprintln(out, "Usage: plugboard users create --email E --password P [--name N] [--operator]")
			return nil
		}
		return fmt.Errorf("users: expected 'users create --email E --password P [--name N] [--operator]'")
	}
	fs := flags("users", "users create --email E --password P [--name N] [--operator]", out)
	email := fs.String("email", "", "the user's email (required)")
	password := fs.String("password", "", "the user's password, at least 8 characters (required)")
	name := fs.String("name", "", "the user's name")
	operator := fs.Bool("operator", false, "make the user an operator (reviews apps, manages the event catalogue)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	a, err := platform.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), platform.Roles{})
	if err != nil {
		return err
	}
	defer a.Close()
	u, err := a.Marketplace.Accounts.SignUp(ctx, marketplace.Anonymous, marketplace.NewUser{Email: *email, Name: *name, Password: *password, IsOperator: *operator})
	if err != nil {
		return fmt.Errorf("users create: %w", err)
	}
	kind := "user"
	if u.IsOperator {
		kind = "operator"
	}
	fmt.Fprintf(out, "created %s %s (id %d)\n", kind, u.Email, u.ID)
	return nil
}
