package web

import (
	"errors"
	"fmt"
	"testing"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/marketplace"
)

func TestFormFault(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"none", nil, false},
		{"ours", errors.New("db down"), false},
		{"internal fault", &fault.Error{Kind: fault.KindInternal, Message: "x"}, false},
		{"invalid", fault.Field("name", "is required"), true},
		{"conflict", fault.Conflict(fault.LastOwner, "x"), true},
		{"already installed, wrapped", fmt.Errorf("installing: %w",
			fault.Conflict(fault.AlreadyInstalled, "x").With(marketplace.DetailInstallation, &marketplace.Installation{})), true},
		{"forbidden", fault.Forbidden(fault.CSRF, "x"), true},
		{"not found", fault.NotFound("app"), false},
		{"unauthorized", fault.Unauthorized(fault.NotAuthenticated, "x"), false},
	} {
		if got := formFault(tt.err); got != tt.want {
			t.Errorf("%s: formFault = %v, want %v", tt.name, got, tt.want)
		}
	}
}
