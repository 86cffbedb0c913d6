// Command plugboard is the one binary of the platform: serve (API, UI,
// worker and scheduler in one process), api, worker, migrate, config,
// version, the operator's users, and the partner's tools (listen,
// deliveries, trigger). main only calls run; app builds the platform, and
// the partner's tools call a running one through the SDK's client
// (sdk/plugboard), with a personal API token. It is a program: nothing
// imports it.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// env is how commands read PLUGBOARD_* variables.
type env func(string) (string, bool)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error
}

func commands() []command {
	return []command{
		{"serve", "run the API, UI, worker and scheduler in one process (the default)", cmdServe("serve")},
		{"api", "run only the HTTP API and UI", cmdServe("api")},
		{"worker", "run only the asynq worker and scheduler", cmdServe("worker")},
		{"migrate", "apply, roll back or list database migrations: migrate up|down|status", cmdMigrate},
		{"users", "manage users: users create --email E --password P [--name N] [--operator]", cmdUsers},
		{"event-types", "the event catalogue, from the database: event-types create --name N --scope S | create --demo | list", cmdEventTypes},
		{"billing", "close billing periods into invoices: billing close [--period 2026-11]", cmdBilling},
		{"secrets", "re-seal stored secrets under a new key: secrets rotate-key --old OLD --new NEW", cmdSecrets},
		{"listen", "forward an app's deliveries to a local URL: listen --app SLUG --forward-to URL", cmdListen},
		{"deliveries", "the delivery log: deliveries list|show|redeliver --app SLUG", cmdDeliveries},
		{"trigger", "publish an event: trigger EVENT --org ORG [--data JSON]", cmdTrigger},
		{"config", "print the effective configuration, secrets masked", cmdConfig},
		{"version", "print the version (also plugboard --version)", cmdVersion},
		{"healthcheck", "exit 0 when the local server is ready (for container healthchecks)", cmdHealthcheck},
	}
}

func run(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
	name := "serve"
	if len(args) > 0 {
		name, args = args[0], args[1:]
	}
	switch {
	case name == "help" && len(args) > 0: // plugboard help listen
		name, args = args[0], []string{"--help"}
	case isHelp(name):
		fmt.Fprint(out, usage())
		return nil
	case name == "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args, out, errOut, getenv)
		}
	}
	return &usageError{err: fmt.Errorf("unknown command %q", name), usage: usage()}
}

// usage is the usage of plugboard itself: every command and its summary.
func usage() string {
	var b strings.Builder
	b.WriteString("Plugboard: the add-on and integration marketplace platform.\n")
	b.WriteString("\nUsage: plugboard <command> [flags]\n\nCommands:\n")
	width := 0
	for _, c := range commands() {
		width = max(width, len(c.name))
	}
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-*s %s\n", width, c.name, c.summary)
	}
	b.WriteString("\nConfiguration comes from PLUGBOARD_* environment variables; see README.md.\n" +
		"Run 'plugboard <command> --help' for a command's flags.\n")
	return b.String()
}

func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
