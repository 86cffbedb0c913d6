package main

import (
	"context"
	"fmt"
	"io"
)

func cmdUsers(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
	return fmt.Errorf("users: not available yet")
}
