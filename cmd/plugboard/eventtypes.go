package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"

	"github.com/plugboard/plugboard/webhooks"
)

const eventTypesSynopsis = "event-types create --name NAME --scope SCOPE [--resource R] [--description D] [--schema FILE|-]\n" +
	"event-types create --demo\n" +
	"event-types list"

// cmdEventTypes manages the event catalogue, an operator's job, through
// the marketplace's services on the configured database (not over HTTP).
func cmdEventTypes(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
	action, args, err := flags("event-types", eventTypesSynopsis, out).action(args, "create", "list")
	if err != nil {
		return err
	}
	if action == "list" {
		return listEventTypes(ctx, args, out, getenv)
	}
	return createEventTypes(ctx, args, out, getenv)
}

func createEventTypes(ctx context.Context, args []string, out io.Writer, getenv env) error {
	fs := flags("event-types create", eventTypesSynopsis, out)
	var n webhooks.NewEventType
	fs.StringVar(&n.Name, "name", "", "the event's name, resource.action in lower case: issue.created (required)")
	fs.StringVar(&n.Scope, "scope", "", "the scope an app needs to receive it: issue:read (required)")
	fs.StringVar(&n.Resource, "resource", "", "what the event is about (default: the name's first part)")
	fs.StringVar(&n.Description, "description", "", "what happened, for partners reading the catalogue")
	schema := fs.String("schema", "", "a file holding the JSON Schema the event's data satisfies, or - for stdin")
	demo := fs.Bool("demo", false, "install the example catalogue: issue.created, issue.resolved, comment.created")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fs.usageErr("event-types create: unexpected argument %q", fs.Arg(0))
	}
	var types []webhooks.NewEventType
	switch {
	case *demo && n.Name+n.Scope+n.Resource+n.Description+*schema != "":
		return fs.usageErr("event-types create: --demo takes no other flag")
	case *demo:
		types = demoEventTypes()
	case n.Name == "" || n.Scope == "":
		return fs.usageErr("event-types create: --name and --scope are required")
	default:
		if *schema != "" {
			b, err := readSchema(*schema)
			if err != nil {
				return fmt.Errorf("event-types create: %w", err)
			}
			n.Schema = b
		}
		types = append(types, n)
	}

	a, err := openPlatform(ctx, getenv)
	if err != nil {
		return err
	}
	defer a.Close()
	existing, err := a.Marketplace.Events.ListEventTypes(ctx, cliOperator())
	if err != nil {
		return fmt.Errorf("event-types create: reading the catalogue: %w", cliError(err))
	}
	created := 0
	for _, t := range types {
		if *demo && slices.ContainsFunc(existing, func(e webhooks.EventType) bool { return e.Name == t.Name }) {
			fmt.Fprintf(out, "%s is already there\n", t.Name)
			continue
		}
		et, err := a.Marketplace.Events.CreateEventType(ctx, cliOperator(), t)
		if err != nil {
			return fmt.Errorf("event-types create %s: %w", t.Name, cliError(err))
		}
		fmt.Fprintf(out, "created event type %s (scope %s)\n", et.Name, et.Scope)
		created++
	}
	if *demo && created == 0 {
		fmt.Fprintln(out, "The demo catalogue is already installed; nothing changed.")
	}
	return nil
}

// readSchema reads a JSON Schema from a file, or stdin for "-".
func readSchema(name string) ([]byte, error) {
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading --schema: %w", err)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("--schema %s is not JSON", name)
	}
	return b, nil
}

func listEventTypes(ctx context.Context, args []string, out io.Writer, getenv env) error {
	fs := flags("event-types list", eventTypesSynopsis, out)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fs.usageErr("event-types list: unexpected argument %q", fs.Arg(0))
	}
	a, err := openPlatform(ctx, getenv)
	if err != nil {
		return err
	}
	defer a.Close()
	types, err := a.Marketplace.Events.ListEventTypes(ctx, cliOperator())
	if err != nil {
		return fmt.Errorf("event-types list: %w", cliError(err))
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSCOPE\tDESCRIPTION")
	for _, t := range types {
		scope := t.Scope
		if scope == "" {
			scope = "-" // Plugboard's own lifecycle events
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", t.Name, scope, t.Description)
	}
	return w.Flush()
}

// demoEventTypes is a small example catalogue, for trying the platform
// out: an issue tracker's issues and comments.
func demoEventTypes() []webhooks.NewEventType {
	issue := schemaJSON(map[string]any{
		"type":     "object",
		"required": []string{"id", "title"},
		"properties": map[string]any{
			"id":    map[string]any{"type": "string"},
			"title": map[string]any{"type": "string"},
			"url":   map[string]any{"type": "string", "format": "uri"},
		},
	})
	comment := schemaJSON(map[string]any{
		"type":     "object",
		"required": []string{"id", "issueId", "body"},
		"properties": map[string]any{
			"id":      map[string]any{"type": "string"},
			"issueId": map[string]any{"type": "string"},
			"body":    map[string]any{"type": "string"},
		},
	})
	return []webhooks.NewEventType{
		{Name: "issue.created", Resource: "issue", Scope: "issue:read", Description: "An issue was opened.", Schema: issue},
		{Name: "issue.resolved", Resource: "issue", Scope: "issue:read", Description: "An issue was resolved.", Schema: issue},
		{Name: "comment.created", Resource: "comment", Scope: "comment:read", Description: "A comment was posted on an issue.", Schema: comment},
	}
}

func schemaJSON(v map[string]any) json.RawMessage {
	b, _ := json.Marshal(v) // maps of strings and slices always encode
	return b
}
