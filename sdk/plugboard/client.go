package plugboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Version is the SDK's version, sent in the User-Agent.
const Version = "0.1.0"

// maxResponse bounds how much of a response the client reads.
const maxResponse = 16 << 20

// Client calls Plugboard's API for a partner app. Make one with NewClient;
// it is safe for concurrent use.
//
// Which credentials a call needs is the API's business: app-wide routes
// (installations, deliveries, redeliveries, test events, stats, runs) take
// the app's client credentials (or a user's token from the owner
// organization) and refuse installation tokens with 403
// app_credentials_required; an installation's own routes take either.
type Client struct {
	base      *url.URL
	hc        *http.Client
	auth      func(*http.Request) error
	userAgent string
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithClientCredentials makes the client authenticate as the app itself,
// with HTTP Basic: its client id and client secret.
func WithClientCredentials(clientID, clientSecret string) ClientOption {
	return func(c *Client) {
		c.auth = func(r *http.Request) error {
			r.SetBasicAuth(clientID, clientSecret)
			return nil
		}
	}
}

// WithToken makes the client send a bearer token: an installation's access
// token (pbi_…), a user's personal API token (pbu_…), or a JWT the app signs.
func WithToken(token string) ClientOption {
	return func(c *Client) {
		c.auth = func(r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+token)
			return nil
		}
	}
}

// WithTokenSource makes the client send bearer tokens from ts, such as an
// installation's tokens refreshed by [OAuth2Config]'s TokenSource. Plugboard
// rotates refresh tokens and revokes a family on reuse: persist the token
// ts returns, and share one source per installation.
func WithTokenSource(ts oauth2.TokenSource) ClientOption {
	return func(c *Client) {
		c.auth = func(r *http.Request) error {
			tok, err := ts.Token()
			if err != nil {
				return fmt.Errorf("plugboard: getting a token: %w", err)
			}
			tok.SetAuthHeader(r)
			return nil
		}
	}
}

// WithHTTPClient sets the HTTP client requests go through (timeouts,
// proxies, transports). The default is a client with a 30 s timeout.
func WithHTTPClient(hc *http.Client) ClientOption {
	return func(c *Client) { c.hc = hc }
}

// WithUserAgent puts product (such as "acme-alerts/1.2") before the SDK's
// own User-Agent.
func WithUserAgent(product string) ClientOption {
	return func(c *Client) { c.userAgent = product + " " + c.userAgent }
}

// NewClient returns a client for the Plugboard at baseURL (the site's root,
// such as https://plugboard.example.com; a trailing /api/0 is accepted).
// Give it credentials with WithClientCredentials, WithToken or
// WithTokenSource.
func NewClient(baseURL string, opts ...ClientOption) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("plugboard: base URL %q is not an absolute http(s) URL", baseURL)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api/0")
	u.RawQuery, u.Fragment, u.RawPath = "", "", ""
	c := &Client{base: u, hc: &http.Client{Timeout: 30 * time.Second}, userAgent: "plugboard-go/" + Version}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// APIError is an error the API answered: an RFC 9457 problem document.
// Branch on Code, which is stable; quote RequestID when reporting a problem.
type APIError struct {
	Status    int               // the HTTP status
	Code      string            // stable snake_case code: not_found, invalid_input, app_only…
	Title     string            // the HTTP status text
	Detail    string            // what went wrong, for a person
	Type      string            // a URI reference naming the kind of problem
	Instance  string            // the request path
	Fields    map[string]string // for invalid input: each bad field and what is wrong with it
	RequestID string            // the request's id (also the X-Request-Id header)
	// Body is the raw response body, with any extension members (the
	// already-installed conflict carries "installation", say).
	Body []byte
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plugboard: %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if len(e.Fields) > 0 {
		keys := make([]string, 0, len(e.Fields))
		for k := range e.Fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			sep := "; "
			if i > 0 {
				sep = ", "
			}
			b.WriteString(sep + k + " " + e.Fields[k])
		}
	}
	if e.RequestID != "" {
		b.WriteString(" (request " + e.RequestID + ")")
	}
	return b.String()
}

// apiError reads an error response.
func apiError(res *http.Response, body []byte) *APIError {
	e := &APIError{Status: res.StatusCode, Body: body}
	var p struct {
		Type      string            `json:"type"`
		Title     string            `json:"title"`
		Status    int               `json:"status"`
		Detail    string            `json:"detail"`
		Instance  string            `json:"instance"`
		Code      string            `json:"code"`
		RequestID string            `json:"requestId"`
		Fields    map[string]string `json:"fields"`
	}
	if json.Unmarshal(body, &p) == nil {
		e.Type, e.Title, e.Detail, e.Instance, e.Code, e.RequestID, e.Fields = p.Type, p.Title, p.Detail, p.Instance, p.Code, p.RequestID, p.Fields
	} else if s := strings.TrimSpace(string(body)); s != "" {
		mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
		if strings.HasPrefix(mt, "text/plain") {
			e.Detail = truncate(s, 200)
		}
	}
	if e.Title == "" {
		e.Title = http.StatusText(res.StatusCode)
	}
	if e.Detail == "" {
		e.Detail = e.Title
	}
	if e.RequestID == "" {
		e.RequestID = res.Header.Get("X-Request-Id")
	}
	return e
}

// request is one API call.
type request struct {
	method string
	path   string // below /api/0, starting and ending with "/"
	query  url.Values
	body   any
}

// do sends r, checks the status and decodes the answer into out (when not
// nil); it returns the response for its headers.
func (c *Client) do(ctx context.Context, r request, out any) (*http.Response, error) {
	u := c.url(r.path)
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("plugboard: encoding the request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("plugboard: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.auth != nil {
		if err := c.auth(req); err != nil {
			return nil, err
		}
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("plugboard: %s %s: %w", r.method, u.Path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("plugboard: reading the answer to %s %s: %w", r.method, u.Path, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, apiError(res, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("plugboard: decoding the answer to %s %s: %w", r.method, u.Path, err)
		}
	}
	return res, nil
}

// url is the API's URL for path, which holds escaped segments below
// /api/0 (built with esc), kept escaped.
func (c *Client) url(path string) *url.URL {
	u := *c.base
	u.RawPath = c.base.EscapedPath() + "/api/0" + path
	u.Path = c.base.Path + "/api/0" + unescapePath(path)
	return &u
}

// unescapePath undoes esc on each segment; the segments come from esc, so
// they always unescape.
func unescapePath(p string) string {
	s, err := url.PathUnescape(p)
	if err != nil {
		return p
	}
	return s
}

func esc(s string) string { return url.PathEscape(s) }

// apiTime formats a time for the API: RFC 3339 in UTC, to the microsecond,
// the precision Plugboard stores (finer ones make its stats buckets miss).
func apiTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}

func setTime(q url.Values, name string, t time.Time) {
	if !t.IsZero() {
		q.Set(name, apiTime(t))
	}
}

func setPage(q url.Values, cursor string, limit int) {
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
}

// ListOptions filter and page an app's installations.
type ListOptions struct {
	Status    InstallationStatus // only installations with this status
	SyncState SyncState          // only installations in this sync state
	Cursor    string             // a Page's NextCursor; "" for the first page
	Limit     int                // 1 to 100; the API's default (25) when 0
}

// ListInstallations lists an app's installations, newest first, one page.
// It needs the app's client credentials (or a user of the owner organization).
func (c *Client) ListInstallations(ctx context.Context, appSlug string, opts ListOptions) (*Page[Installation], error) {
	q := url.Values{}
	if opts.Status != "" {
		q.Set("status", string(opts.Status))
	}
	if opts.SyncState != "" {
		q.Set("syncState", string(opts.SyncState))
	}
	setPage(q, opts.Cursor, opts.Limit)
	return list[Installation](ctx, c, "/apps/"+esc(appSlug)+"/installations/", q)
}

// AllInstallations iterates over every installation ListInstallations
// finds, following the pages from opts.Cursor on. It stops at the first
// error, which it yields.
func (c *Client) AllInstallations(ctx context.Context, appSlug string, opts ListOptions) iter.Seq2[Installation, error] {
	return all(opts.Cursor, func(cursor string) (*Page[Installation], error) {
		opts.Cursor = cursor
		return c.ListInstallations(ctx, appSlug, opts)
	})
}

// GetInstallation returns an installation, to its app or its own token.
func (c *Client) GetInstallation(ctx context.Context, uuid string) (*Installation, error) {
	var out Installation
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/installations/" + esc(uuid) + "/"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateInstallation changes the fields of u that are not nil.
func (c *Client) UpdateInstallation(ctx context.Context, uuid string, u InstallationUpdate) (*Installation, error) {
	var out Installation
	if _, err := c.do(ctx, request{method: http.MethodPut, path: "/installations/" + esc(uuid) + "/", body: u}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyInstallation is the app confirming an install it has set up: a
// pending installation becomes installed (an installed one stays so). It
// also records the app's externalID for the organization and the configURL
// where the organization configures the app; an empty one is left as it is.
func (c *Client) VerifyInstallation(ctx context.Context, uuid, externalID, configURL string) (*Installation, error) {
	installed := StatusInstalled
	u := InstallationUpdate{Status: &installed}
	if externalID != "" {
		u.ExternalID = &externalID
	}
	if configURL != "" {
		u.ConfigURL = &configURL
	}
	return c.UpdateInstallation(ctx, uuid, u)
}

// Uninstall ends an installation: its tokens stop working at once and the
// app is sent installation.deleted.
func (c *Client) Uninstall(ctx context.Context, uuid string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/installations/" + esc(uuid) + "/"}, nil)
	return err
}

// RequestGrant asks for a fresh install code for an installation whose code
// expired unexchanged (sync reason token_never_exchanged); Plugboard also
// resends installation.created with it. The app's own credentials only.
func (c *Client) RequestGrant(ctx context.Context, uuid string) (*Grant, error) {
	var out Grant
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/installations/" + esc(uuid) + "/grants/"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeliveryFilter filters and pages an app's delivery log.
type DeliveryFilter struct {
	Status       DeliveryStatus // only deliveries with this status
	EventType    string         // only deliveries of this event type
	Installation string         // only deliveries to this installation (its uuid)
	Since        time.Time      // only those created at or after; ignored when zero
	Until        time.Time      // only those created before; ignored when zero
	Cursor       string         // a Page's NextCursor; "" for the first page
	Limit        int            // 1 to 100; the API's default (25) when 0
}

// ListDeliveries lists an app's webhook deliveries, newest first, one page.
func (c *Client) ListDeliveries(ctx context.Context, appSlug string, f DeliveryFilter) (*Page[Delivery], error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	if f.EventType != "" {
		q.Set("eventType", f.EventType)
	}
	if f.Installation != "" {
		q.Set("installation", f.Installation)
	}
	setTime(q, "since", f.Since)
	setTime(q, "until", f.Until)
	setPage(q, f.Cursor, f.Limit)
	return list[Delivery](ctx, c, "/apps/"+esc(appSlug)+"/deliveries/", q)
}

// AllDeliveries iterates over every delivery ListDeliveries finds.
func (c *Client) AllDeliveries(ctx context.Context, appSlug string, f DeliveryFilter) iter.Seq2[Delivery, error] {
	return all(f.Cursor, func(cursor string) (*Page[Delivery], error) {
		f.Cursor = cursor
		return c.ListDeliveries(ctx, appSlug, f)
	})
}

// GetDelivery returns one delivery with its payload and its attempts.
func (c *Client) GetDelivery(ctx context.Context, appSlug, deliveryID string) (*Delivery, error) {
	var raw json.RawMessage
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/apps/" + esc(appSlug) + "/deliveries/" + esc(deliveryID) + "/"}, &raw); err != nil {
		return nil, err
	}
	out := Delivery{Raw: raw}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("plugboard: decoding delivery %s of %s: %w", deliveryID, appSlug, err)
	}
	return &out, nil
}

// Redeliver sends the given deliveries once more (at most 1000), with the
// same webhook-id; finished ones get one more attempt now, pending ones are
// left alone.
func (c *Client) Redeliver(ctx context.Context, appSlug string, deliveryIDs ...string) (*Redelivery, error) {
	if len(deliveryIDs) == 0 {
		return nil, errors.New("plugboard: Redeliver needs at least one delivery id")
	}
	return c.redeliver(ctx, appSlug, map[string]any{"deliveries": deliveryIDs})
}

// RedeliverFailed sends every failed delivery created in [since, until)
// once more, in a background job; a zero time leaves that end open.
func (c *Client) RedeliverFailed(ctx context.Context, appSlug string, since, until time.Time) (*Redelivery, error) {
	body := map[string]any{"status": "failed"}
	if !since.IsZero() {
		body["since"] = apiTime(since)
	}
	if !until.IsZero() {
		body["until"] = apiTime(until)
	}
	return c.redeliver(ctx, appSlug, body)
}

func (c *Client) redeliver(ctx context.Context, appSlug string, body map[string]any) (*Redelivery, error) {
	var out Redelivery
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/apps/" + esc(appSlug) + "/redeliveries/", body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SendTestEvent sends a webhook.test event to the app's webhook URL and
// returns its delivery, to follow with GetDelivery. An app without a
// webhook URL gets an APIError with Code no_webhook_url.
func (c *Client) SendTestEvent(ctx context.Context, appSlug string) (*Delivery, error) {
	var out Delivery
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/apps/" + esc(appSlug) + "/test-events/"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Stats returns the app's webhook health in [since, until) in buckets of
// resolution (at least a minute). Zero values take the API's defaults: the
// 24 hours up to the end of the current hour, by the hour.
func (c *Client) Stats(ctx context.Context, appSlug string, since, until time.Time, resolution time.Duration) (*WebhookStats, error) {
	q := url.Values{}
	setTime(q, "since", since)
	setTime(q, "until", until)
	if resolution > 0 {
		q.Set("resolution", resolution.String())
	}
	var out WebhookStats
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/apps/" + esc(appSlug) + "/stats/", query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RunListOptions filter and page an app's reconciliation runs.
type RunListOptions struct {
	Job    string // only runs of this job: verification_deadline, unexchanged_grant, lifecycle_delivery, partner_sync
	Cursor string
	Limit  int
}

// ListReconciliationRuns lists the reconciliation runs that concern the
// app, newest first, one page.
func (c *Client) ListReconciliationRuns(ctx context.Context, appSlug string, opts RunListOptions) (*Page[ReconciliationRun], error) {
	q := url.Values{}
	if opts.Job != "" {
		q.Set("job", opts.Job)
	}
	setPage(q, opts.Cursor, opts.Limit)
	return list[ReconciliationRun](ctx, c, "/apps/"+esc(appSlug)+"/reconciliation-runs/", q)
}

// AllReconciliationRuns iterates over every run ListReconciliationRuns finds.
func (c *Client) AllReconciliationRuns(ctx context.Context, appSlug string, opts RunListOptions) iter.Seq2[ReconciliationRun, error] {
	return all(opts.Cursor, func(cursor string) (*Page[ReconciliationRun], error) {
		opts.Cursor = cursor
		return c.ListReconciliationRuns(ctx, appSlug, opts)
	})
}
