package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

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
	run          string    // the suffix of setup's names (the partner is partner-<run>@bench.example)
	orgs         []custOrg // where events are published
	installs     int       // installations of bench apps in them
	appSlugs     []string
	partnerToken string // the apps' owner: reads their delivery logs
	serviceToken string
	secret       string // app 0's webhook secret (wide mode: every app's)
}

// custOrg is a customer organization and how many bench apps it installed:
// each event published there fans out to that many deliveries.
type custOrg struct {
	slug   string
	fanout int
}

func (w *world) meanFanout() float64 {
	if len(w.orgs) == 0 {
		return 1
	}
	return float64(w.installs) / float64(len(w.orgs))
}

// setup builds, through the API: an operator, the bench.ping event type, a
// partner organization with o.apps public apps pointed at the sink,
// published, with high limits; o.orgs customer organizations, each of which
// installs every app or (-installs) a random few; and a host service token.
// It waits for the installation.created webhooks. In wide mode one app is
// made through the API and the others are copies of it in SQL (seed.go).
func setup(ctx context.Context, p *rig, o options, hc *http.Client, logf func(string, ...any)) (*world, error) {
	a, base, sk := p.app, p.base, p.sink
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
	w := &world{run: run, partnerToken: partner.token}
	viaAPI := o.apps
	if o.mode == "wide" {
		viaAPI = 1
	}
	for i := range viaAPI {
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
		if i == 0 {
			w.secret = created.WebhookSecret
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
		w.appSlugs = append(w.appSlugs, slug)
	}
	if err := w.installAll(ctx, customer, o, run, logf); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(120 * time.Second)
	for sk.lifecycle.Load() < int64(w.installs) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the sink got %d of %d installation.created webhooks in 120s", sk.lifecycle.Load(), w.installs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if bad := sk.badSig.Load(); bad > 0 {
		return nil, fmt.Errorf("%d installation.created webhooks failed signature verification", bad)
	}
	if o.mode == "wide" {
		n, err := cloneApps(ctx, p, w, o.apps-1, logf)
		if err != nil {
			return nil, fmt.Errorf("copying the app: %w", err)
		}
		for i := 1; i <= n; i++ {
			if err := sk.setSecret(i, w.secret); err != nil {
				return nil, err
			}
		}
		w.installs += n
		w.orgs[0].fanout += n
	}
	var tok struct{ Token string }
	if err := op.do(ctx, "POST", "/api/0/service-tokens/", map[string]string{"name": "bench publisher " + run}, 201, &tok); err != nil {
		return nil, err
	}
	w.serviceToken = tok.Token
	return w, nil
}

// installAll creates the customer organizations and their installations,
// eight requests at a time: every app in each, or -installs of them chosen
// at random (seeded).
func (w *world) installAll(ctx context.Context, customer *client, o options, run string, logf func(string, ...any)) error {
	rng := rand.New(rand.NewPCG(uint64(o.seed), 19))
	type job struct {
		org  int
		apps []string
	}
	jobs := make([]job, o.orgs)
	w.orgs = make([]custOrg, o.orgs)
	for i := range jobs {
		apps := w.appSlugs
		if o.installsMin > 0 {
			k := o.installsMin + rng.IntN(o.installsMax-o.installsMin+1)
			apps = nil
			for _, j := range rng.Perm(len(w.appSlugs))[:k] {
				apps = append(apps, w.appSlugs[j])
			}
		}
		jobs[i] = job{org: i, apps: apps}
		w.installs += len(apps)
		w.orgs[i].fanout = len(apps)
	}
	if o.orgs > 50 {
		logf("creating %d customer organizations and %d installations", o.orgs, w.installs)
	}
	work := make(chan job)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for j := range work {
				var cust struct{ Slug string }
				err := customer.do(ctx, "POST", "/api/0/organizations/", map[string]string{"name": fmt.Sprintf("Bench Customer %d %s", j.org, run)}, 201, &cust)
				for _, slug := range j.apps {
					if err != nil {
						break
					}
					err = customer.do(ctx, "POST", "/api/0/organizations/"+cust.Slug+"/installations/", map[string]any{"app": slug, "plan": "free"}, 201, nil)
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				w.orgs[j.org].slug = cust.Slug
			}
		})
	}
	for _, j := range jobs {
		select {
		case work <- j:
		case err := <-errs:
			close(work)
			wg.Wait()
			return err
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	return nil
}

// publisher publishes bench.ping events in the customer organizations with
// the host's service token: one per POST …/events/, or batch per POST
// /api/0/event-batches/. Bodies are written by hand: the publishers share
// this process's CPU with the platform.
type publisher struct {
	client *client
	w      *world
	batch  int
}

// publish posts events seq, seq+1, … (one, or a batch) with data.sentAt,
// each in an organization rng picks, and returns how many events were
// created and how many deliveries they fanned out to.
func (p *publisher) publish(ctx context.Context, rng *rand.Rand, seq int64, sentAt time.Time) (events, deliveries int, err error) {
	if p.batch == 0 {
		org := p.w.orgs[rng.IntN(len(p.w.orgs))].slug
		body := fmt.Appendf(nil, `{"type":"bench.ping","data":{"seq":%d,"sentAt":%d}}`, seq, sentAt.UnixNano())
		var out struct{ Deliveries int }
		if err := p.client.do(ctx, "POST", "/api/0/organizations/"+org+"/events/", body, 201, &out); err != nil {
			return 0, 0, err
		}
		return 1, out.Deliveries, nil
	}
	body := make([]byte, 0, 96*p.batch+16)
	body = append(body, `{"events":[`...)
	for i := range p.batch {
		if i > 0 {
			body = append(body, ',')
		}
		org := p.w.orgs[rng.IntN(len(p.w.orgs))].slug
		body = fmt.Appendf(body, `{"organization":%q,"type":"bench.ping","data":{"seq":%d,"sentAt":%d}}`, org, seq+int64(i), sentAt.UnixNano())
	}
	body = append(body, "]}"...)
	var out struct {
		Results []struct {
			Status int
			Event  *struct{ Deliveries int }
		}
	}
	if err := p.client.do(ctx, "POST", "/api/0/event-batches/", body, 200, &out); err != nil {
		return 0, 0, err
	}
	for _, r := range out.Results {
		if r.Status == 201 && r.Event != nil {
			events++
			deliveries += r.Event.Deliveries
		} else if err == nil {
			err = fmt.Errorf("an event of the batch was answered %d", r.Status)
		}
	}
	return events, deliveries, err
}

// warmUp publishes n events (negative seq: the delivery-log check leaves
// them out) and waits for their deliveries, to warm the connections to the
// sink, the pools and the endpoint cache; then the sink forgets them.
func warmUp(ctx context.Context, pub *publisher, sk *sink, n int) error {
	rng := rand.New(rand.NewPCG(7, 7))
	single := *pub
	single.batch = 0
	want := 0
	for i := range n {
		_, deliveries, err := single.publish(ctx, rng, int64(-1-i), time.Now())
		if err != nil {
			return err
		}
		want += deliveries
	}
	for deadline := time.Now().Add(60 * time.Second); sk.pings.Load() < int64(want); {
		if time.Now().After(deadline) {
			return fmt.Errorf("the sink got %d of %d deliveries in 60s", sk.pings.Load(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sk.reset()
	return nil
}
