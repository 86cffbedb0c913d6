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
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "plugboard: "+err.Error())
		os.Exit(1)
	}
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
		{"listen", "forward an app's deliveries to a local URL: listen --app SLUG --forward-to URL", cmdListen},
		{"deliveries", "the delivery log: deliveries list|show|redeliver --app SLUG", cmdDeliveries},
		{"trigger", "publish an event: trigger EVENT --org ORG [--data JSON]", cmdTrigger},
		{"config", "print the effective configuration, secrets masked", cmdConfig},
		{"version", "print the version", cmdVersion},
		{"healthcheck", "exit 0 when the local server is ready (for container healthchecks)", cmdHealthcheck},
	}
}

func run(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
	name := "serve"
	if len(args) > 0 {
		name, args = args[0], args[1:]
	}
	if name == "-h" || name == "--help" || name == "help" {
		usage(out)
		return nil
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args, out, errOut, getenv)
		}
	}
	usage(errOut)
	return fmt.Errorf("unknown command %q", name)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Plugboard: the add-on and integration marketplace platform.")
	fmt.Fprintln(w, "\nUsage: plugboard <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nConfiguration comes from PLUGBOARD_* environment variables; see README.md.\nRun 'plugboard <command> --help' for a command's flags.")
}

// flags returns a FlagSet whose --help prints the command's summary.
func flags(name, synopsis string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: plugboard %s\n", synopsis)
		for _, c := range commands() {
			if c.name == name {
				fmt.Fprintf(out, "\n%s\n", c.summary)
			}
		}
		fmt.Fprintln(out)
		fs.PrintDefaults()
	}
	return fs
}

func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
