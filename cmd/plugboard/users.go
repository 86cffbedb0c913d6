package main

import (
	"context"
	"fmt"
	"io"

	"github.com/plugboard/plugboard/marketplace"
)

func cmdUsers(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
	fs := flags("users", "users create --email E --password P [--name N] [--operator]", out)
	email := fs.String("email", "", "the user's email (required)")
	password := fs.String("password", "", "the user's password, at least 8 characters (required)")
	name := fs.String("name", "", "the user's name")
	operator := fs.Bool("operator", false, "make the user an operator (reviews apps, manages the event catalogue)")
	_, args, err := fs.action(args, "create")
	if err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *email == "" || *password == "" {
		return fs.usageErr("users create: --email and --password are required")
	}
	a, err := openPlatform(ctx, getenv)
	if err != nil {
		return err
	}
	defer a.Close()
	u, err := a.Marketplace.Accounts.SignUp(ctx, marketplace.Anonymous, marketplace.NewUser{Email: *email, Name: *name, Password: *password, IsOperator: *operator})
	if err != nil {
		return fmt.Errorf("users create: %w", cliError(err))
	}
	kind := "user"
	if u.IsOperator {
		kind = "operator"
	}
	fmt.Fprintf(out, "created %s %s (id %d)\n", kind, u.Email, u.ID)
	return nil
}
