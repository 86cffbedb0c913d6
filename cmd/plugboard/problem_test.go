package main

import (
	"context"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
)

func TestProblemTextSaysEachThingOnce(t *testing.T) {
	for _, c := range []struct {
		detail string
		fields map[string]string
		want   string
	}{
		{"That email is already taken.", map[string]string{"email": "is already taken"}, "That email is already taken."},
		{"The request has invalid fields.", map[string]string{"password": "must be at least 8 characters", "email": "is required"},
			"The request has invalid fields.\n  - email: is required\n  - password: must be at least 8 characters"},
		// The detail names the field but not its problem: the line adds something.
		{"The email cannot be used.", map[string]string{"email": "is on a blocklist"}, "The email cannot be used.\n  - email: is on a blocklist"},
		{"Not found.", nil, "Not found."},
	} {
		if got := problemText(c.detail, c.fields); got != c.want {
			t.Errorf("problemText(%q, %v) =\n%s\nwant\n%s", c.detail, c.fields, got, c.want)
		}
	}
}

// The problems of the real platform, over HTTP and through the services.
func TestProblemsArePrintedOnce(t *testing.T) {
	env := testEnv(t)
	cli := func(env map[string]string, args ...string) error {
		return run(context.Background(), args, &strings.Builder{}, &strings.Builder{}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}
	args := []string{"users", "create", "--email", "twice@example.com", "--password", "correct horse battery"}
	if err := cli(env, args...); err != nil {
		t.Fatal(err)
	}
	err := cli(env, args...)
	if err == nil || err.Error() != "users create: That email is already taken." {
		t.Errorf("the second users create said %q, want %q", err, "users create: That email is already taken.")
	}
	if err := cli(env, "users", "create", "--email", "short@example.com", "--password", "short"); err == nil ||
		strings.Count(err.Error(), "\n") != 1 || !strings.Contains(err.Error(), "\n  - password: ") {
		t.Errorf("a short password said %q, want the detail and one field line", err)
	}

	p := apptest.Start(t)
	base := p.URL + "/api/0"
	call(t, "POST", base+"/users/", "", map[string]string{"email": "dev@partner.example", "password": "correct horse battery"}, nil)
	var auth struct{ Token string }
	call(t, "POST", base+"/auth/", "", map[string]string{"email": "dev@partner.example", "password": "correct horse battery"}, &auth)
	call(t, "POST", base+"/organizations/", auth.Token, map[string]string{"name": "Partner"}, nil)
	var tok struct{ Token string }
	call(t, "POST", base+"/api-tokens/", auth.Token, map[string]string{"name": "cli"}, &tok)
	api := map[string]string{"PLUGBOARD_API_URL": p.URL, "PLUGBOARD_API_TOKEN": tok.Token}
	err = cli(api, "trigger", "nothing.happened", "--org", "partner", "--data", "{}")
	want := "trigger: 400 invalid_input: The request has invalid fields.\n  - type: \"nothing.happened\" is not in the event catalogue"
	if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Count(err.Error(), "nothing.happened") != 1 {
		t.Errorf("trigger of an unknown type said:\n%v\nwant it to start with:\n%s", err, want)
	}
}
