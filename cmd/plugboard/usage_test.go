package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runBinary runs the built binary with args and returns its stdout,
// stderr and exit status.
func runBinary(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := plugboard(t, env, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%v: %v", args, err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// TestEveryCommandHasHelp runs each command of commands() (so a new one is
// covered without touching this test), and each action of those that have
// some, with --help and -h: each exits 0 and prints a usage naming it.
func TestEveryCommandHasHelp(t *testing.T) {
	var cases [][]string
	for _, c := range commands() {
		cases = append(cases, []string{c.name, "--help"}, []string{c.name, "-h"}, []string{"help", c.name})
	}
	for _, action := range [][]string{{"deliveries", "list"}, {"deliveries", "show"}, {"deliveries", "redeliver"},
		{"users", "create"}, {"event-types", "create"}, {"event-types", "list"}, {"secrets", "rotate-key"}, {"trigger", "issue.created"}} {
		cases = append(cases, append(action, "--help"))
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			stdout, stderr, code := runBinary(t, nil, args...)
			name := args[0]
			if name == "help" {
				name = args[1]
			}
			if code != 0 || stderr != "" {
				t.Errorf("exit %d, stderr %q; want 0 and nothing", code, stderr)
			}
			if !strings.HasPrefix(stdout, "Usage: plugboard "+name) {
				t.Errorf("stdout does not start with the usage of %s:\n%s", name, stdout)
			}
		})
	}
}

func TestVersionAndTopLevelHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"version"}, "plugboard dev\n"},
		{[]string{"--version"}, "plugboard dev\n"},
		{[]string{"--help"}, "Usage: plugboard <command>"},
		{[]string{"-h"}, "Usage: plugboard <command>"},
		{[]string{"help"}, "Usage: plugboard <command>"},
	} {
		stdout, stderr, code := runBinary(t, nil, c.args...)
		if code != 0 || stderr != "" || !strings.Contains(stdout, c.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 0 and %q", c.args, code, stdout, stderr, c.want)
		}
	}
}

// TestBadUsageExits2 checks bad usage exits 2 with the message and the
// command's usage on stderr, before anything touches the network or the
// database.
func TestBadUsageExits2(t *testing.T) {
	for _, c := range []struct {
		args  []string
		usage string // the usage it must print
		says  string
	}{
		{[]string{"frobnicate"}, "plugboard <command>", `unknown command "frobnicate"`},
		{[]string{"serve", "--bogus"}, "plugboard serve", "flag provided but not defined: -bogus"},
		{[]string{"migrate", "sideways"}, "plugboard migrate", "expected up, down or status"},
		{[]string{"users"}, "plugboard users", "expected an action: create"},
		{[]string{"users", "delete"}, "plugboard users", `unknown action "delete"`},
		{[]string{"users", "create", "--email", "a@example.com"}, "plugboard users", "--email and --password are required"},
		{[]string{"deliveries"}, "plugboard deliveries", "expected an action: list, show or redeliver"},
		{[]string{"deliveries", "list"}, "plugboard deliveries", "--app is required"},
		{[]string{"deliveries", "show", "--app", "x"}, "plugboard deliveries", "name at least one delivery id"},
		{[]string{"deliveries", "redeliver", "--app", "x"}, "plugboard deliveries", "name at least one delivery id"},
		{[]string{"deliveries", "list", "--limit", "many", "--app", "x"}, "plugboard deliveries", "invalid value"},
		{[]string{"listen"}, "plugboard listen", "--app and --forward-to are required"},
		{[]string{"listen", "--app", "x", "--forward-to", "ftp://x"}, "plugboard listen", "must be an http(s) URL"},
		{[]string{"trigger", "--org", "o"}, "plugboard trigger", "an event type and --org are required"},
		{[]string{"trigger", "x.y", "--org", "o", "--data", "{"}, "plugboard trigger", "--data is not JSON"},
		{[]string{"event-types"}, "plugboard event-types", "expected an action: create or list"},
		{[]string{"event-types", "create", "--name", "issue.created"}, "plugboard event-types", "--name and --scope are required"},
		{[]string{"event-types", "create", "--demo", "--name", "x.y"}, "plugboard event-types", "--demo takes no other flag"},
		{[]string{"event-types", "list", "extra"}, "plugboard event-types", `unexpected argument "extra"`},
		{[]string{"secrets"}, "plugboard secrets", "expected an action: rotate-key"},
		{[]string{"secrets", "rotate-key", "--new", strings.Repeat("n", 32)}, "plugboard secrets", "--old or --old-file is required"},
		{[]string{"secrets", "rotate-key", "--old", "o", "--old-file", "f", "--new", "n"}, "plugboard secrets", "not both"},
		{[]string{"secrets", "rotate-key", "--old", "o", "--new", "short"}, "plugboard secrets", "at least 32"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			stdout, stderr, code := runBinary(t, nil, c.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr)
			}
			first, rest, _ := strings.Cut(stderr, "\n")
			if !strings.HasPrefix(first, "plugboard: ") || !strings.Contains(first, c.says) {
				t.Errorf("first line %q, want the error saying %q", first, c.says)
			}
			if !strings.Contains(rest, "Usage: "+c.usage) {
				t.Errorf("stderr lacks the usage of %s:\n%s", c.usage, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

func TestRuntimeErrorsExit1(t *testing.T) {
	// A platform that is not there is not bad usage.
	_, stderr, code := runBinary(t, map[string]string{"PLUGBOARD_API_URL": "http://" + freePort(t), "PLUGBOARD_API_TOKEN": "pbu_x"},
		"deliveries", "list", "--app", "x")
	if code != 1 || !strings.HasPrefix(stderr, "plugboard: deliveries list: ") || strings.Contains(stderr, "Usage:") {
		t.Errorf("exit %d, stderr %q; want 1 with the error alone", code, stderr)
	}
}

func TestBackoffDoublesToThirtySecondsWithJitter(t *testing.T) {
	var b backoff
	want := backoffMin
	for i := range 12 {
		d := b.next()
		if d < want/2 || d > want {
			t.Errorf("wait %d is %v, want between %v and %v", i, d, want/2, want)
		}
		want = min(want*2, backoffMax)
	}
	b.reset()
	if d := b.next(); d > backoffMin {
		t.Errorf("after reset the wait is %v, want at most %v", d, backoffMin)
	}
}

// TestListenToAPlatformThatNeverAnswered says "cannot reach" once and
// nothing more while it keeps trying with longer and longer waits.
func TestListenToAPlatformThatNeverAnswered(t *testing.T) {
	base := "http://" + freePort(t) // closed: nothing listens there
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	out := &syncBuffer{}
	env := map[string]string{"PLUGBOARD_API_URL": base, "PLUGBOARD_API_TOKEN": "pbu_unused"}
	err := run(ctx, []string{"listen", "--app", "x", "--forward-to", "http://localhost:1/"}, out, out,
		func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "Cannot reach "+base+" (") || !strings.HasPrefix(lines[1], "Forwarded 0 deliveries") {
		t.Errorf("listen printed %d lines, want one 'Cannot reach %s' and the summary:\n%s", len(lines), base, out.String())
	}
}
