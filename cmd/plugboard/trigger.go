package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

func cmdTrigger(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
	fs := flags("trigger", "trigger EVENT --org ORG [--data JSON]", out)
	api := addAPIFlags(fs, getenv)
	org := fs.String("org", "", "the organization the event happens in (required)")
	data := fs.String("data", "", "the event's data, a JSON object (default: a sample built from the event type's JSON Schema)")
	var event string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		event, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if event == "" || *org == "" {
		return fs.usageErr("trigger: an event type and --org are required")
	}
	var raw json.RawMessage
	if *data != "" {
		if err := json.Unmarshal([]byte(*data), &raw); err != nil {
			return fs.usageErr("trigger: --data is not JSON: %w", err)
		}
	}
	c, err := api.client()
	if err != nil {
		if *data == "" {
			return fmt.Errorf("trigger: reading the event catalogue: %w", err)
		}
		return fmt.Errorf("trigger: %w", err)
	}
	if *data == "" {
		// A sample event: data built from the catalogue's schema.
		types, err := c.ListEventTypes(ctx)
		if err != nil {
			return fmt.Errorf("trigger: reading the event catalogue: %w", cliError(err))
		}
		var schema any
		for _, t := range types {
			if t.Name == event {
				_ = json.Unmarshal(t.Schema, &schema)
			}
		}
		raw, _ = json.Marshal(sample(schema))
	}
	ev, err := c.PublishEvent(ctx, *org, event, raw)
	if err != nil {
		return fmt.Errorf("trigger: %w", cliError(err))
	}
	fmt.Fprintf(out, "published %s (%s) to %d installations\n", event, ev.ID, ev.Deliveries)
	return nil
}
