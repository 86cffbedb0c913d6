package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// apiClient talks to a running platform with a personal API token.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// apiFlags adds --api and --token, defaulting to PLUGBOARD_API_URL and
// PLUGBOARD_API_TOKEN.
func apiFlags(fs interface {
	StringVar(p *string, name, value, usage string)
}, getenv env) *apiClient {
	c := &apiClient{http: &http.Client{}}
	base, _ := getenv("PLUGBOARD_API_URL")
	if base == "" {
		base = "http://localhost:8080"
	}
	token, _ := getenv("PLUGBOARD_API_TOKEN")
	fs.StringVar(&c.base, "api", base, "the platform's URL (PLUGBOARD_API_URL)")
	fs.StringVar(&c.token, "token", token, "a personal API token, pbu_… (PLUGBOARD_API_TOKEN); make one with POST /api/0/api-tokens/")
	return c
}

// problemError is an API error, with its problem document.
type problemError struct {
	Status int
	Code   string
	Detail string
	Fields map[string]string
}

func (e *problemError) Error() string {
	msg := fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Detail)
	for k, v := range e.Fields {
		msg += fmt.Sprintf(" (%s: %s)", k, v)
	}
	return msg
}

func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	if c.token == "" {
		return errors.New("no API token: pass --token or set PLUGBOARD_API_TOKEN (create one with POST /api/0/api-tokens/)")
	}
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 400 {
		pe := &problemError{Status: res.StatusCode}
		if json.Unmarshal(b, pe) != nil || pe.Code == "" {
			pe.Code, pe.Detail = "error", strings.TrimSpace(string(b))
		}
		return pe
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

// forwarded mirrors webhooks.Forwarded on the wire.
type forwarded struct {
	DeliveryID string            `json:"deliveryId"`
	EventType  string            `json:"eventType"`
	Attempt    int               `json:"attempt"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

func cmdListen(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
	fs := flags("listen", "listen --app SLUG --forward-to URL [--api URL] [--token TOKEN]", out)
	c := apiFlags(fs, getenv)
	app := fs.String("app", "", "the app whose deliveries to forward (required)")
	to := fs.String("forward-to", "", "where to forward each delivery, such as http://localhost:3000/webhooks (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *app == "" || *to == "" {
		fs.Usage()
		return errors.New("listen: --app and --forward-to are required")
	}
	if u, err := url.Parse(*to); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("listen: --forward-to must be an http(s) URL, got %q", *to)
	}
	var total, ok atomic.Int64
	local := &http.Client{Timeout: 30 * time.Second}
	forward := func(f forwarded) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, *to, strings.NewReader(f.Body))
		if err != nil {
			return
		}
		for k, v := range f.Headers {
			req.Header.Set(k, v)
		}
		start := time.Now()
		res, err := local.Do(req)
		total.Add(1)
		status := "error: " + fmt.Sprint(err)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			status = fmt.Sprint(res.StatusCode)
			if res.StatusCode < 300 {
				ok.Add(1)
			}
		}
		fmt.Fprintf(out, "%s  %-24s → %s  %4dms  %s\n", time.Now().Format("15:04:05"), f.EventType, status, time.Since(start).Milliseconds(), f.DeliveryID)
	}
	path := "/api/0/apps/" + url.PathEscape(*app) + "/delivery-stream/"
	connected, everConnected := false, false
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		err := c.stream(ctx, path, func() {
			if everConnected {
				fmt.Fprintln(out, "Reconnected.")
			} else {
				fmt.Fprintf(out, "Ready. Forwarding deliveries of %s to %s (Ctrl-C to stop).\n", *app, *to)
			}
			connected, everConnected, backoff = true, true, 500*time.Millisecond
		}, forward)
		if ctx.Err() != nil {
			break
		}
		var pe *problemError
		if errors.As(err, &pe) && pe.Status < 500 {
			return fmt.Errorf("listen: %w", err)
		}
		if connected || !everConnected {
			fmt.Fprintf(out, "Lost the connection to %s (%v); reconnecting…\n", c.base, err)
			connected = false
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	fmt.Fprintf(out, "Forwarded %d deliveries: %d answered 2xx, %d did not.\n", total.Load(), ok.Load(), total.Load()-ok.Load())
	return nil
}

// stream reads the server-sent events at path, calling ready once the
// stream is open and each for every delivery.
func (c *apiClient) stream(ctx context.Context, path string, ready func(), each func(forwarded)) error {
	if c.token == "" {
		return &problemError{Status: 401, Code: "no_token", Detail: "pass --token or set PLUGBOARD_API_TOKEN"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.base, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "text/event-stream")
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		pe := &problemError{Status: res.StatusCode}
		_ = json.Unmarshal(b, pe)
		return pe
	}
	ready()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	var event, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event == "delivery" {
				var f forwarded
				if json.Unmarshal([]byte(data), &f) == nil {
					each(f)
				}
			}
			if event == "close" {
				return errors.New("the platform is shutting down")
			}
			event, data = "", ""
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

func cmdDeliveries(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
	usage := "deliveries list|show|redeliver --app SLUG [--status S] [ID …]"
	if len(args) == 0 {
		return errors.New("deliveries: expected " + usage)
	}
	action, args := args[0], args[1:]
	fs := flags("deliveries", usage, out)
	c := apiFlags(fs, getenv)
	app := fs.String("app", "", "the app (required)")
	status := fs.String("status", "", "list: only pending, succeeded, failed or paused")
	limit := fs.Int("limit", 25, "list: how many")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *app == "" {
		return errors.New("deliveries: --app is required")
	}
	base := "/api/0/apps/" + url.PathEscape(*app)
	switch action {
	case "list":
		q := url.Values{"limit": {fmt.Sprint(*limit)}}
		if *status != "" {
			q.Set("status", *status)
		}
		var list []struct {
			ID, EventType, Status string
			Attempts              int
			LastStatusCode        *int
			DateCreated           time.Time
		}
		if err := c.do(ctx, "GET", base+"/deliveries/?"+q.Encode(), nil, &list); err != nil {
			return fmt.Errorf("deliveries list: %w", err)
		}
		for _, d := range list {
			code := "-"
			if d.LastStatusCode != nil {
				code = fmt.Sprint(*d.LastStatusCode)
			}
			fmt.Fprintf(out, "%s  %-36s  %-24s %-9s attempts %d  last %s\n", d.DateCreated.Format(time.RFC3339), d.ID, d.EventType, d.Status, d.Attempts, code)
		}
	case "show":
		for _, id := range fs.Args() {
			var d json.RawMessage
			if err := c.do(ctx, "GET", base+"/deliveries/"+url.PathEscape(id)+"/", nil, &d); err != nil {
				return fmt.Errorf("deliveries show %s: %w", id, err)
			}
			var pretty bytes.Buffer
			json.Indent(&pretty, d, "", "  ")
			fmt.Fprintln(out, pretty.String())
		}
	case "redeliver":
		if len(fs.Args()) == 0 {
			return errors.New("deliveries redeliver: name at least one delivery id")
		}
		var res struct{ Count int }
		if err := c.do(ctx, "POST", base+"/redeliveries/", map[string]any{"deliveries": fs.Args()}, &res); err != nil {
			return fmt.Errorf("deliveries redeliver: %w", err)
		}
		fmt.Fprintf(out, "sending %d deliveries again\n", res.Count)
	default:
		return fmt.Errorf("deliveries: unknown action %q; expected list, show or redeliver", action)
	}
	return nil
}

func cmdTrigger(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
	fs := flags("trigger", "trigger EVENT --org ORG [--data JSON]", out)
	c := apiFlags(fs, getenv)
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
		fs.Usage()
		return errors.New("trigger: an event type and --org are required")
	}
	var raw json.RawMessage
	if *data == "" {
		// A sample event: data built from the catalogue's schema.
		var types []struct {
			Name   string
			Schema any
		}
		if err := c.do(ctx, "GET", "/api/0/event-types/", nil, &types); err != nil {
			return fmt.Errorf("trigger: reading the event catalogue: %w", err)
		}
		var schema any
		for _, t := range types {
			if t.Name == event {
				schema = t.Schema
			}
		}
		raw, _ = json.Marshal(sample(schema))
	} else if err := json.Unmarshal([]byte(*data), &raw); err != nil {
		return fmt.Errorf("trigger: --data is not JSON: %w", err)
	}
	var ev struct {
		ID         string
		Deliveries int
	}
	if err := c.do(ctx, "POST", "/api/0/organizations/"+url.PathEscape(*org)+"/events/", map[string]any{"type": event, "data": raw}, &ev); err != nil {
		return fmt.Errorf("trigger: %w", err)
	}
	fmt.Fprintf(out, "published %s (%s) to %d installations\n", event, ev.ID, ev.Deliveries)
	return nil
}
