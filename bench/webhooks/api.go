package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/marketplace"
)

// client talks to the platform's JSON API as a user would.
type client struct {
	base  string
	token string
	hc    *http.Client
}

func newHTTPClient(conns int) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: conns * 2, MaxIdleConnsPerHost: conns * 2, IdleConnTimeout: 5 * time.Minute, DisableCompression: true}}
}

// do sends body as JSON and decodes the answer into out unless the status
// is not want.
func (c *client) do(ctx context.Context, method, path string, body any, want int, out any) error {
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decoding %s: %w", method, path, b, err)
		}
	}
	return nil
}

const password = "correct horse battery staple"

func (c *client) signIn(ctx context.Context, email string) error {
	var out struct{ Token string }
	if err := c.do(ctx, "POST", "/api/0/auth/", map[string]string{"email": email, "password": password}, 200, &out); err != nil {
		return err
	}
	c.token = out.Token
	return nil
}

// world is what setup built.
type world struct {
	customerOrg  string
	appSlugs     []string
	serviceToken string
}

// setup builds, through the API: an operator, the bench.ping event type, a
// partner organization with n public apps pointed at the sink, published,
// with high limits; a customer organization that installs every app; and a
// host service token. It waits for the n installation.created webhooks.
func setup(ctx context.Context, a *platform.App, base string, sk *sink, n int, hc *http.Client) (*world, error) {
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	anon := &client{base: base, hc: hc}
	partner := &client{base: base, hc: hc}
	customer := &client{base: base, hc: hc}
	op := &client{base: base, hc: hc}

	for _, u := range []struct {
		c     *client
		email string
	}{{partner, "partner-" + run + "@bench.example"}, {customer, "admin-" + run + "@bench.example"}} {
		if err := anon.do(ctx, "POST", "/api/0/users/", map[string]string{"email": u.email, "name": "Bench User", "password": password}, 201, nil); err != nil {
			return nil, err
		}
		if err := u.c.signIn(ctx, u.email); err != nil {
			return nil, err
		}
	}
	opEmail := "operator-" + run + "@bench.example"
	if _, err := a.Marketplace.Accounts.SignUp(ctx, marketplace.Anonymous, marketplace.NewUser{Email: opEmail, Name: "Bench Operator", Password: password, IsOperator: true}); err != nil {
		return nil, fmt.Errorf("creating operator: %w", err)
	}
	if err := op.signIn(ctx, opEmail); err != nil {
		return nil, err
	}
	if err := op.do(ctx, "POST", "/api/0/event-types/", map[string]any{"name": "bench.ping", "scope": "bench:read",
		"description": "A benchmark ping: data.seq and data.sentAt (unix nanoseconds)."}, 201, nil); err != nil {
		return nil, err
	}

	var org struct{ Slug string }
	if err := partner.do(ctx, "POST", "/api/0/organizations/", map[string]string{"name": "Bench Partner " + run}, 201, &org); err != nil {
		return nil, err
	}
	var cust struct{ Slug string }
	if err := customer.do(ctx, "POST", "/api/0/organizations/", map[string]string{"name": "Bench Customer " + run}, 201, &cust); err != nil {
		return nil, err
	}
	w := &world{customerOrg: cust.Slug}
	for i := range n {
		var created struct {
			Slug          string
			WebhookSecret string
		}
		if err := partner.do(ctx, "POST", "/api/0/organizations/"+org.Slug+"/apps/", map[string]any{
			"name": fmt.Sprintf("Bench App %d %s", i, run), "overview": "Receives bench.ping webhooks for the benchmark.",
			"categories": []string{"alerting"}, "scopes": []string{"bench:read"}, "events": []string{"bench.ping"},
			"webhookUrl": fmt.Sprintf("%s/app/%d", sk.URL, i), "redirectUrl": "https://bench.example/setup",
		}, 201, &created); err != nil {
			return nil, err
		}
		if err := sk.setSecret(i, created.WebhookSecret); err != nil {
			return nil, err
		}
		slug := created.Slug
		if err := partner.do(ctx, "PUT", "/api/0/apps/"+slug+"/", map[string]any{"webhookRateLimit": 100000, "webhookMaxInFlight": 256}, 200, nil); err != nil {
			return nil, err
		}
		if err := partner.do(ctx, "POST", "/api/0/apps/"+slug+"/plans/", map[string]any{"name": "Free", "price": "0"}, 201, nil); err != nil {
			return nil, err
		}
		if err := partner.do(ctx, "POST", "/api/0/apps/"+slug+"/publish-requests/", nil, 201, nil); err != nil {
			return nil, err
		}
		if err := op.do(ctx, "PUT", "/api/0/apps/"+slug+"/", map[string]any{"status": "published"}, 200, nil); err != nil {
			return nil, err
		}
		if err := customer.do(ctx, "POST", "/api/0/organizations/"+cust.Slug+"/installations/", map[string]any{"app": slug, "plan": "free"}, 201, nil); err != nil {
			return nil, err
		}
		w.appSlugs = append(w.appSlugs, slug)
	}
	deadline := time.Now().Add(60 * time.Second)
	for sk.lifecycle.Load() < int64(n) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the sink got %d of %d installation.created webhooks in 60s", sk.lifecycle.Load(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if bad := sk.badSig.Load(); bad > 0 {
		return nil, fmt.Errorf("%d installation.created webhooks failed signature verification", bad)
	}
	var tok struct{ Token string }
	if err := op.do(ctx, "POST", "/api/0/service-tokens/", map[string]string{"name": "bench publisher " + run}, 201, &tok); err != nil {
		return nil, err
	}
	w.serviceToken = tok.Token
	return w, nil
}

// publisher publishes bench.ping events in the customer organization with
// the host's service token. The body is written by hand: the publishers
// share this process's CPU with the platform.
type publisher struct {
	client *client
	org    string
}

// publish posts the event with data.seq and data.sentAt and returns how
// many deliveries it fanned out to.
func (p *publisher) publish(ctx context.Context, seq int64, sentAt time.Time) (int, error) {
	body := fmt.Appendf(nil, `{"type":"bench.ping","data":{"seq":%d,"sentAt":%d}}`, seq, sentAt.UnixNano())
	var out struct{ Deliveries int }
	if err := p.client.do(ctx, "POST", "/api/0/organizations/"+p.org+"/events/", body, 201, &out); err != nil {
		return 0, err
	}
	return out.Deliveries, nil
}

// warmUp publishes n events (negative seq: the delivery-log check leaves
// them out) and waits for their deliveries, to warm the connections to the
// sink, the pools and the endpoint cache; then the sink forgets them.
func warmUp(ctx context.Context, pub *publisher, sk *sink, n, apps int) error {
	for i := range n {
		deliveries, err := pub.publish(ctx, int64(-1-i), time.Now())
		if err != nil {
			return err
		}
		if deliveries != apps {
			return fmt.Errorf("an event fanned out to %d deliveries, want %d", deliveries, apps)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); sk.pings.Load() < int64(n*apps); {
		if time.Now().After(deadline) {
			return fmt.Errorf("the sink got %d of %d deliveries in 30s", sk.pings.Load(), n*apps)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sk.reset()
	return nil
}
