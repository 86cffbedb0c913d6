package plugboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

// Canned answers, shaped exactly as web/openapi.yaml's examples.
const (
	installationJSON = `{"uuid":"b23eb701-895a-480e-8501-d1a4f15441f8","app":{"id":"5","slug":"acme-alerts","name":"Acme Alerts"},` +
		`"organization":{"id":"8","slug":"globex","name":"Globex"},"status":"installed","statusReason":"","syncState":"in_sync","syncReason":"",` +
		`"syncCheckedAt":null,"plan":{"slug":"pro","name":"Pro","price":"9.00","currency":"USD","interval":"month"},"scopes":["org:read"],` +
		`"externalId":"acct_42","configUrl":"https://alerts.acme.example/accounts/acct_42","dateCreated":"2026-01-02T15:04:05.123456Z",` +
		`"dateUpdated":"2026-01-02T15:06:00Z","dateVerified":"2026-01-02T15:06:00Z","dateDeleted":null}`
	pendingJSON = `{"uuid":"3f1d2c4b-5a6e-4f70-8a9b-0c1d2e3f4a5b","app":{"id":"5","slug":"acme-alerts","name":"Acme Alerts"},` +
		`"organization":{"id":"9","slug":"initech","name":"Initech"},"status":"pending","statusReason":"","syncState":"out_of_sync","syncReason":"token_never_exchanged",` +
		`"syncCheckedAt":"2026-01-02T16:00:00Z","plan":null,"scopes":["org:read"],"externalId":"","configUrl":"","dateCreated":"2026-01-02T15:00:00Z",` +
		`"dateUpdated":"2026-01-02T15:00:00Z","dateVerified":null,"dateDeleted":null}`
	thirdJSON = `{"uuid":"7c2e4b1a-5d3f-4e6a-8b9c-0d1e2f3a4b5c","app":{"id":"5","slug":"acme-alerts","name":"Acme Alerts"},` +
		`"organization":{"id":"3","slug":"acme","name":"Acme Corp"},"status":"deleted","statusReason":"uninstalled","syncState":"in_sync","syncReason":"",` +
		`"syncCheckedAt":null,"plan":null,"scopes":[],"externalId":"","configUrl":"","dateCreated":"2026-01-01T10:00:00Z",` +
		`"dateUpdated":"2026-01-01T11:00:00Z","dateVerified":"2026-01-01T10:01:00Z","dateDeleted":"2026-01-01T11:00:00Z"}`
	deliveryJSON = `{"id":"0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c","eventType":"issue.created","status":"succeeded","installation":"b23eb701-895a-480e-8501-d1a4f15441f8",` +
		`"attempts":1,"maxAttempts":8,"lastStatusCode":200,"lastErrorClass":"","dateCreated":"2026-01-02T15:04:05.123456Z",` +
		`"dateLastAttempt":"2026-01-02T15:04:05.234567Z","dateNextAttempt":null,"dateCompleted":"2026-01-02T15:04:05.345678Z"}`
	deliveryDetailJSON = `{"id":"0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c","eventType":"issue.created","status":"succeeded","installation":"b23eb701-895a-480e-8501-d1a4f15441f8",` +
		`"attempts":2,"maxAttempts":8,"lastStatusCode":200,"lastErrorClass":"","dateCreated":"2026-01-02T15:04:05.123456Z",` +
		`"dateLastAttempt":"2026-01-02T15:04:05.234567Z","dateNextAttempt":null,"dateCompleted":"2026-01-02T15:04:05.345678Z",` +
		`"payload":{"data":{"title":"Database on fire"},"id":"0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c","installation":{"uuid":"b23eb701-895a-480e-8501-d1a4f15441f8"},` +
		`"timestamp":"2026-01-02T15:04:05.123456Z","type":"issue.created"},` +
		`"attemptsDetail":[{"id":"76","number":1,"url":"https://alerts.acme.example/plugboard/webhooks","requestHeaders":{"webhook-id":"0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c"},` +
		`"responseStatus":null,"responseHeaders":{},"responseBody":"","durationMs":10000.5,"errorClass":"timeout","errorMessage":"context deadline exceeded",` +
		`"dateCreated":"2026-01-02T15:04:05.134567Z"},` +
		`{"id":"77","number":2,"url":"https://alerts.acme.example/plugboard/webhooks","requestHeaders":{"content-type":"application/json",` +
		`"webhook-id":"0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c","plugboard-event":"issue.created"},"responseStatus":200,` +
		`"responseHeaders":{"content-type":"application/json"},"responseBody":"{\"ok\":true}","durationMs":84.2,"errorClass":"","errorMessage":"",` +
		`"dateCreated":"2026-01-02T15:04:05.234567Z"}]}`
	testDeliveryJSON = `{"id":"9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a","eventType":"webhook.test","status":"pending","installation":null,` +
		`"attempts":0,"maxAttempts":8,"lastStatusCode":null,"lastErrorClass":"","dateCreated":"2026-01-02T15:04:05.123456Z",` +
		`"dateLastAttempt":null,"dateNextAttempt":"2026-01-02T15:04:05.123456Z","dateCompleted":null}`
	statsJSON = `{"since":"2026-01-02T15:00:00Z","until":"2026-01-02T17:00:00Z","resolution":"1h0m0s","attempts":120,"successRate":0.9833333333333333,` +
		`"buckets":[{"start":"2026-01-02T15:00:00Z","attempts":120,"succeeded":118,"failed":2,"successRate":0.9833333333333333,` +
		`"latencyP50Ms":41.5,"latencyP95Ms":180.2,"latencyP99Ms":950.0,"errorClasses":{"timeout":2}},` +
		`{"start":"2026-01-02T16:00:00Z","attempts":0,"succeeded":0,"failed":0,"successRate":0,"latencyP50Ms":0,"latencyP95Ms":0,"latencyP99Ms":0,"errorClasses":{}}]}`
	runJSON = `{"id":"12","job":"partner_sync","app":"3","dateStarted":"2026-11-22T03:40:00Z","dateFinished":"2026-11-22T03:40:01Z","examined":4,"found":1,` +
		`"repaired":1,"errors":[],"findings":[{"installation":"7c2e4b1a-5d3f-4e6a-8b9c-0d1e2f3a4b5c","app":"3","reason":"missing_at_partner",` +
		`"action":"resent installation.created with a fresh code","repaired":true,"dateCreated":"2026-11-22T03:40:01Z"}]}`
	globalRunJSON = `{"id":"11","job":"unexchanged_grant","app":null,"dateStarted":"2026-11-22T03:39:00Z","dateFinished":null,"examined":0,"found":0,` +
		`"repaired":0,"errors":["the database went away"],"findings":[]}`
)

// fakeAPI is a stand-in for Plugboard's API: canned answers, the real
// conventions (Link headers, problem documents, strict JSON bodies).
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex
	log []string // "METHOD path?query body"
}

const (
	clientID     = "9f86d081884c7d659a2feaa0c55ad015"
	clientSecret = "pbcs_Zk8dW0pXr5sLm1vT7yBn4cHj6gFe9x9Qa"
	instToken    = "pbi_Zk8dW0pXr5sLm1vT7yBn4cHj6gFe9x9Qa"
)

func problem(w http.ResponseWriter, r *http.Request, status int, code, detail string, fields map[string]string, extra map[string]any) {
	p := map[string]any{"type": "/docs/problems#" + code, "title": http.StatusText(status), "status": status, "detail": detail,
		"instance": r.URL.Path, "code": code, "requestId": "6f1c2a8e-9f5b-4c1e-8d7a-3b2f1e0c9d8a"}
	if fields != nil {
		p["fields"] = fields
	}
	for k, v := range extra {
		p[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Request-Id", "6f1c2a8e-9f5b-4c1e-8d7a-3b2f1e0c9d8a")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(p)
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t}
	mux := http.NewServeMux()
	page := func(w http.ResponseWriter, r *http.Request, items string, next string) {
		// Sentry-style Link header, as web/paginate.go writes it.
		base := f.srv.URL + r.URL.Path
		q := r.URL.Query()
		q.Del("cursor")
		prevURL, nextURL := base, base
		if enc := q.Encode(); enc != "" {
			prevURL += "?" + enc
		}
		link := `<` + prevURL + `>; rel="previous"; results="false"; cursor=""`
		if next != "" {
			q.Set("cursor", next)
			nextURL += "?" + q.Encode()
			link += `, <` + nextURL + `>; rel="next"; results="true"; cursor="` + next + `"`
		} else {
			link += `, <` + nextURL + `>; rel="next"; results="false"; cursor=""`
		}
		w.Header().Set("Link", link)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(items))
	}
	appOnly := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if id, secret, ok := r.BasicAuth(); ok {
				if id != clientID || secret != clientSecret {
					problem(w, r, 401, "invalid_client", "The client credentials are wrong.", nil, nil)
					return
				}
			} else if r.Header.Get("Authorization") == "Bearer "+instToken {
				problem(w, r, 403, "app_credentials_required", "List installations as the app itself (client credentials or an app JWT), not with an installation token.", nil, nil)
				return
			} else {
				problem(w, r, 401, "not_authenticated", "Sign in, or send an installation token or app credentials.", nil, nil)
				return
			}
			h(w, r)
		}
	}
	appOrToken := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			id, secret, basic := r.BasicAuth()
			if !(basic && id == clientID && secret == clientSecret) && r.Header.Get("Authorization") != "Bearer "+instToken {
				problem(w, r, 401, "invalid_token", "The token is not valid.", nil, nil)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /api/0/apps/acme-alerts/installations/", appOnly(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("cursor") {
		case "":
			page(w, r, "["+installationJSON+","+pendingJSON+"]", "eyJ2IjoiMiJ9")
		case "eyJ2IjoiMiJ9":
			page(w, r, "["+thirdJSON+"]", "")
		case "broken":
			problem(w, r, 503, "unavailable", "PostgreSQL does not answer.", nil, nil)
		default:
			problem(w, r, 400, "invalid_cursor", "The cursor is not one this API returned.", map[string]string{"cursor": "is not a cursor this API returned"}, nil)
		}
	}))
	mux.HandleFunc("GET /api/0/installations/{uuid}/", appOrToken(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("uuid") != "b23eb701-895a-480e-8501-d1a4f15441f8" {
			problem(w, r, 404, "not_found", "The installation does not exist.", nil, nil)
			return
		}
		w.Write([]byte(installationJSON))
	}))
	mux.HandleFunc("PUT /api/0/installations/{uuid}/", appOrToken(func(w http.ResponseWriter, r *http.Request) {
		if !strictBody(w, r, &struct {
			Status     *string `json:"status"`
			Plan       *string `json:"plan"`
			ExternalID *string `json:"externalId"`
			ConfigURL  *string `json:"configUrl"`
		}{}) {
			return
		}
		w.Write([]byte(installationJSON))
	}))
	mux.HandleFunc("DELETE /api/0/installations/{uuid}/", appOrToken(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("uuid") == "7c2e4b1a-5d3f-4e6a-8b9c-0d1e2f3a4b5c" {
			problem(w, r, 409, "installation_not_live", "The installation is already deleted.", nil, nil)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /api/0/installations/{uuid}/grants/", appOrToken(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"code":"pbg_3mQ9tR2vXkL8nB5cW1zY7hJ4dF6gA0sE9uI2oP5qT8w","expiresAt":"2026-01-02T15:14:05.123456Z"}`))
	}))
	mux.HandleFunc("GET /api/0/apps/acme-alerts/deliveries/", appOnly(func(w http.ResponseWriter, r *http.Request) {
		for _, k := range []string{"since", "until"} {
			if v := r.URL.Query().Get(k); v != "" {
				if _, err := time.Parse(time.RFC3339, v); err != nil {
					problem(w, r, 400, "invalid_input", "The request has invalid fields.", map[string]string{k: "must be an RFC 3339 time such as 2026-01-02T15:04:05Z"}, nil)
					return
				}
			}
		}
		page(w, r, "["+deliveryJSON+"]", "")
	}))
	mux.HandleFunc("GET /api/0/apps/acme-alerts/deliveries/{id}/", appOnly(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(deliveryDetailJSON))
	}))
	mux.HandleFunc("POST /api/0/apps/acme-alerts/redeliveries/", appOnly(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Deliveries []string   `json:"deliveries"`
			Status     string     `json:"status"`
			Since      *time.Time `json:"since"`
			Until      *time.Time `json:"until"`
		}
		if !strictBody(w, r, &in) {
			return
		}
		w.WriteHeader(http.StatusAccepted)
		if in.Status == "failed" {
			w.Write([]byte(`{"count":0,"background":true}`))
		} else {
			w.Write([]byte(`{"count":` + string(rune('0'+len(in.Deliveries))) + `,"background":false}`))
		}
	}))
	mux.HandleFunc("POST /api/0/apps/{app}/test-events/", appOnly(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("app") != "acme-alerts" {
			problem(w, r, 409, "no_webhook_url", "The app has no webhook URL to send to.", nil, nil)
			return
		}
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(testDeliveryJSON))
	}))
	mux.HandleFunc("GET /api/0/apps/acme-alerts/stats/", appOnly(func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("resolution"); v != "" {
			if d, err := time.ParseDuration(v); err != nil || d < time.Minute {
				problem(w, r, 400, "invalid_input", "The request has invalid fields.", map[string]string{"resolution": "must be a duration such as 1m, 1h or 24h"}, nil)
				return
			}
		}
		w.Write([]byte(statsJSON))
	}))
	mux.HandleFunc("GET /api/0/apps/acme-alerts/reconciliation-runs/", appOnly(func(w http.ResponseWriter, r *http.Request) {
		page(w, r, "["+runJSON+","+globalRunJSON+"]", "")
	}))
	mux.HandleFunc("GET /api/0/apps/behind-proxy/installations/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("X-Request-Id", "from-the-proxy")
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte("<html><body>502 Bad Gateway</body></html>"))
	})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		buf.ReadFrom(r.Body)
		r.Body.Close()
		f.mu.Lock()
		f.log = append(f.log, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+buf.String()))
		f.mu.Unlock()
		if ua := r.Header.Get("User-Agent"); !strings.Contains(ua, "plugboard-go/") {
			t.Errorf("user agent %q", ua)
		}
		r.Body = http.NoBody
		if buf.Len() > 0 {
			if r.Header.Get("Content-Type") != "application/json" {
				problem(w, r, 415, "unsupported_media_type", "Send JSON.", nil, nil)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(buf.Bytes()))
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// strictBody decodes like the real API: unknown fields and trailing data
// are refused.
func strictBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.More() {
		problem(w, r, 400, "invalid_input", "The body is not valid JSON for this request: "+errString(err), nil, nil)
		return false
	}
	return true
}

func errString(err error) string {
	if err == nil {
		return "trailing data"
	}
	return err.Error()
}

func (f *fakeAPI) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.log
	f.log = nil
	return out
}

func (f *fakeAPI) client(t *testing.T, opts ...plugboard.ClientOption) *plugboard.Client {
	t.Helper()
	c, err := plugboard.NewClient(f.srv.URL, append([]plugboard.ClientOption{plugboard.WithClientCredentials(clientID, clientSecret)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientInstallationsPages(t *testing.T) {
	f := newFakeAPI(t)
	c := f.client(t)
	ctx := context.Background()

	p, err := c.ListInstallations(ctx, "acme-alerts", plugboard.ListOptions{Status: plugboard.StatusInstalled, SyncState: plugboard.InSync, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 2 || !p.HasNext || p.NextCursor != "eyJ2IjoiMiJ9" || p.HasPrev || p.PrevCursor != "" {
		t.Fatalf("page 1: %d items, next %v %q, prev %v %q", len(p.Items), p.HasNext, p.NextCursor, p.HasPrev, p.PrevCursor)
	}
	inst := p.Items[0]
	if inst.UUID != "b23eb701-895a-480e-8501-d1a4f15441f8" || inst.App.ID != "5" || inst.App.Slug != "acme-alerts" || inst.Organization.Slug != "globex" ||
		inst.Status != plugboard.StatusInstalled || inst.SyncState != plugboard.InSync || inst.SyncCheckedAt != nil || inst.Plan == nil || inst.Plan.Price != "9.00" ||
		inst.ExternalID != "acct_42" || inst.DateVerified == nil || inst.DateDeleted != nil || !inst.DateCreated.Equal(time.Date(2026, 1, 2, 15, 4, 5, 123456000, time.UTC)) {
		t.Errorf("installation %+v", inst)
	}
	if p.Items[1].Plan != nil || p.Items[1].SyncReason != plugboard.SyncReasonNeverExchanged || p.Items[1].SyncCheckedAt == nil {
		t.Errorf("pending installation %+v", p.Items[1])
	}
	if got := f.requests(); len(got) != 1 || got[0] != "GET /api/0/apps/acme-alerts/installations/?limit=2&status=installed&syncState=in_sync" {
		t.Errorf("requests %q", got)
	}

	p2, err := c.ListInstallations(ctx, "acme-alerts", plugboard.ListOptions{Status: plugboard.StatusInstalled, Cursor: p.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	if len(p2.Items) != 1 || p2.HasNext || p2.NextCursor != "" || p2.Items[0].Status != plugboard.StatusDeleted || p2.Items[0].DateDeleted == nil {
		t.Errorf("page 2: %+v", p2)
	}
	f.requests()

	// The iterator follows the Link header across both pages.
	var uuids []string
	for inst, err := range c.AllInstallations(ctx, "acme-alerts", plugboard.ListOptions{Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		uuids = append(uuids, inst.UUID)
	}
	if len(uuids) != 3 || uuids[2] != "7c2e4b1a-5d3f-4e6a-8b9c-0d1e2f3a4b5c" {
		t.Errorf("all: %v", uuids)
	}
	if got := f.requests(); len(got) != 2 || got[1] != "GET /api/0/apps/acme-alerts/installations/?cursor=eyJ2IjoiMiJ9&limit=2" {
		t.Errorf("requests %q", got)
	}

	// Breaking out early fetches no more pages.
	for range c.AllInstallations(ctx, "acme-alerts", plugboard.ListOptions{}) {
		break
	}
	if got := f.requests(); len(got) != 1 {
		t.Errorf("early break: %q", got)
	}

	// An error on a page is yielded, and ends the iteration.
	n, errs := 0, 0
	for _, err := range c.AllInstallations(ctx, "acme-alerts", plugboard.ListOptions{Cursor: "broken"}) {
		n++
		var apiErr *plugboard.APIError
		if errors.As(err, &apiErr) && apiErr.Status == 503 && apiErr.Code == "unavailable" {
			errs++
		}
	}
	if n != 1 || errs != 1 {
		t.Errorf("error iteration: %d yields, %d errors", n, errs)
	}
}

func TestClientProblemDocuments(t *testing.T) {
	f := newFakeAPI(t)
	c := f.client(t)
	ctx := context.Background()

	_, err := c.GetInstallation(ctx, "00000000-0000-4000-8000-000000000000")
	var apiErr *plugboard.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("not an APIError: %v", err)
	}
	if apiErr.Status != 404 || apiErr.Code != "not_found" || apiErr.Detail != "The installation does not exist." || apiErr.Title != "Not Found" ||
		apiErr.RequestID != "6f1c2a8e-9f5b-4c1e-8d7a-3b2f1e0c9d8a" || apiErr.Type != "/docs/problems#not_found" ||
		apiErr.Instance != "/api/0/installations/00000000-0000-4000-8000-000000000000/" {
		t.Errorf("APIError %+v", apiErr)
	}
	if want := "plugboard: 404 not_found: The installation does not exist. (request 6f1c2a8e-9f5b-4c1e-8d7a-3b2f1e0c9d8a)"; err.Error() != want {
		t.Errorf("Error() = %q", err)
	}

	_, err = c.ListInstallations(ctx, "acme-alerts", plugboard.ListOptions{Cursor: "forged"})
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != "invalid_cursor" || apiErr.Fields["cursor"] != "is not a cursor this API returned" {
		t.Errorf("invalid cursor: %+v", err)
	}
	if !strings.Contains(err.Error(), "cursor is not a cursor this API returned") {
		t.Errorf("Error() = %q", err)
	}

	err = c.Uninstall(ctx, "7c2e4b1a-5d3f-4e6a-8b9c-0d1e2f3a4b5c")
	if !errors.As(err, &apiErr) || apiErr.Status != 409 || apiErr.Code != "installation_not_live" {
		t.Errorf("conflict: %v", err)
	}

	_, err = c.SendTestEvent(ctx, "no-hooks")
	if !errors.As(err, &apiErr) || apiErr.Code != "no_webhook_url" {
		t.Errorf("no webhook URL: %v", err)
	}

	// Installation tokens may not list an app's installations.
	tc := f.client(t, plugboard.WithToken(instToken))
	_, err = tc.ListInstallations(ctx, "acme-alerts", plugboard.ListOptions{})
	if !errors.As(err, &apiErr) || apiErr.Status != 403 || apiErr.Code != "app_credentials_required" {
		t.Errorf("token listing: %v", err)
	}
	// Wrong client credentials.
	bad, _ := plugboard.NewClient(f.srv.URL, plugboard.WithClientCredentials(clientID, "pbcs_wrong"))
	_, err = bad.ListDeliveries(ctx, "acme-alerts", plugboard.DeliveryFilter{})
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Code != "invalid_client" {
		t.Errorf("bad credentials: %v", err)
	}

	// Not a problem document (a proxy's error page): still an APIError.
	_, err = c.ListInstallations(ctx, "behind-proxy", plugboard.ListOptions{})
	if !errors.As(err, &apiErr) || apiErr.Status != 502 || apiErr.Code != "" || apiErr.RequestID != "from-the-proxy" || apiErr.Detail != "Bad Gateway" {
		t.Errorf("proxy error: %+v", err)
	}
}

func TestClientInstallationWrites(t *testing.T) {
	f := newFakeAPI(t)
	ctx := context.Background()
	// With the installation's own token.
	c := f.client(t, plugboard.WithToken(instToken))
	const uuid = "b23eb701-895a-480e-8501-d1a4f15441f8"

	inst, err := c.GetInstallation(ctx, uuid)
	if err != nil || inst.UUID != uuid {
		t.Fatalf("get: %+v %v", inst, err)
	}
	if _, err := c.VerifyInstallation(ctx, uuid, "acct_42", "https://alerts.acme.example/accounts/acct_42"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.VerifyInstallation(ctx, uuid, "", ""); err != nil {
		t.Fatal(err)
	}
	empty := ""
	if _, err := c.UpdateInstallation(ctx, uuid, plugboard.InstallationUpdate{ConfigURL: &empty}); err != nil {
		t.Fatal(err)
	}
	if err := c.Uninstall(ctx, uuid); err != nil {
		t.Fatal(err)
	}
	g, err := c.RequestGrant(ctx, uuid)
	if err != nil || !strings.HasPrefix(g.Code, "pbg_") || g.ExpiresAt.IsZero() {
		t.Errorf("grant %+v %v", g, err)
	}
	want := []string{
		"GET /api/0/installations/" + uuid + "/",
		`PUT /api/0/installations/` + uuid + `/ {"status":"installed","externalId":"acct_42","configUrl":"https://alerts.acme.example/accounts/acct_42"}`,
		`PUT /api/0/installations/` + uuid + `/ {"status":"installed"}`,
		`PUT /api/0/installations/` + uuid + `/ {"configUrl":""}`,
		"DELETE /api/0/installations/" + uuid + "/",
		"POST /api/0/installations/" + uuid + "/grants/",
	}
	if got := f.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestClientDeliveries(t *testing.T) {
	f := newFakeAPI(t)
	c := f.client(t)
	ctx := context.Background()
	since := time.Date(2026, 1, 2, 0, 0, 0, 0, time.FixedZone("CET", 3600))
	until := time.Date(2026, 1, 3, 0, 0, 0, 1500, time.UTC) // sent to the microsecond

	p, err := c.ListDeliveries(ctx, "acme-alerts", plugboard.DeliveryFilter{Status: plugboard.DeliveryFailed, EventType: "issue.created",
		Installation: "b23eb701-895a-480e-8501-d1a4f15441f8", Since: since, Until: until, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	d := p.Items[0]
	if len(p.Items) != 1 || p.HasNext || d.Status != plugboard.DeliverySucceeded || d.LastStatusCode != 200 || d.MaxAttempts != 8 ||
		d.DateNextAttempt != nil || d.DateCompleted == nil || d.Payload != nil {
		t.Errorf("deliveries %+v", p)
	}
	var n int
	for d, err := range c.AllDeliveries(ctx, "acme-alerts", plugboard.DeliveryFilter{}) {
		if err != nil || d.ID == "" {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Errorf("all deliveries: %d", n)
	}

	d2, err := c.GetDelivery(ctx, "acme-alerts", "0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c")
	if err != nil {
		t.Fatal(err)
	}
	if string(d2.Raw) != deliveryDetailJSON {
		t.Errorf("raw %s", d2.Raw)
	}
	if d2.Payload == nil || d2.Payload.Type != "issue.created" || d2.Payload.InstallationUUID() != d2.Installation || len(d2.AttemptsDetail) != 2 {
		t.Fatalf("detail %+v", d2)
	}
	var data struct{ Title string }
	if err := d2.Payload.DecodeData(&data); err != nil || data.Title != "Database on fire" {
		t.Errorf("payload data %+v %v", data, err)
	}
	a0, a1 := d2.AttemptsDetail[0], d2.AttemptsDetail[1]
	if a0.ResponseStatus != 0 || a0.ErrorClass != "timeout" || a0.Duration() != 10000500*time.Microsecond ||
		a1.ResponseStatus != 200 || a1.RequestHeaders["plugboard-event"] != "issue.created" || a1.ResponseBody != `{"ok":true}` {
		t.Errorf("attempts %+v", d2.AttemptsDetail)
	}

	r, err := c.Redeliver(ctx, "acme-alerts", "0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c", "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a")
	if err != nil || r.Count != 2 || r.Background {
		t.Errorf("redeliver %+v %v", r, err)
	}
	if _, err := c.Redeliver(ctx, "acme-alerts"); err == nil {
		t.Error("redeliver nothing")
	}
	r, err = c.RedeliverFailed(ctx, "acme-alerts", since, until)
	if err != nil || !r.Background {
		t.Errorf("redeliver failed %+v %v", r, err)
	}
	if _, err := c.RedeliverFailed(ctx, "acme-alerts", time.Time{}, time.Time{}); err != nil {
		t.Error(err)
	}
	td, err := c.SendTestEvent(ctx, "acme-alerts")
	if err != nil || td.EventType != plugboard.EventWebhookTest || td.Installation != "" || td.LastStatusCode != 0 || td.DateNextAttempt == nil {
		t.Errorf("test event %+v %v", td, err)
	}

	want := []string{
		"GET /api/0/apps/acme-alerts/deliveries/?eventType=issue.created&installation=b23eb701-895a-480e-8501-d1a4f15441f8&limit=10&since=2026-01-01T23%3A00%3A00Z&status=failed&until=2026-01-03T00%3A00%3A00.000001Z",
		"GET /api/0/apps/acme-alerts/deliveries/",
		"GET /api/0/apps/acme-alerts/deliveries/0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c/",
		`POST /api/0/apps/acme-alerts/redeliveries/ {"deliveries":["0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c","9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"]}`,
		`POST /api/0/apps/acme-alerts/redeliveries/ {"since":"2026-01-01T23:00:00Z","status":"failed","until":"2026-01-03T00:00:00.000001Z"}`,
		`POST /api/0/apps/acme-alerts/redeliveries/ {"status":"failed"}`,
		"POST /api/0/apps/acme-alerts/test-events/",
	}
	if got := f.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestClientStatsAndRuns(t *testing.T) {
	f := newFakeAPI(t)
	c := f.client(t)
	ctx := context.Background()
	s, err := c.Stats(ctx, "acme-alerts", time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC), time.Date(2026, 1, 2, 17, 0, 0, 0, time.UTC), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if s.Resolution != time.Hour || s.Attempts != 120 || len(s.Buckets) != 2 || s.Buckets[0].ErrorClasses["timeout"] != 2 ||
		s.Buckets[0].LatencyP99Ms != 950 || s.Buckets[1].Attempts != 0 || !s.Since.Equal(time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)) {
		t.Errorf("stats %+v", s)
	}
	if _, err := c.Stats(ctx, "acme-alerts", time.Time{}, time.Time{}, 0); err != nil {
		t.Error(err)
	}
	var apiErr *plugboard.APIError
	if _, err := c.Stats(ctx, "acme-alerts", time.Time{}, time.Time{}, time.Second); !errors.As(err, &apiErr) || apiErr.Fields["resolution"] == "" {
		t.Errorf("sub-minute resolution: %v", err)
	}

	p, err := c.ListReconciliationRuns(ctx, "acme-alerts", plugboard.RunListOptions{Job: "partner_sync"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 2 || p.Items[0].App != "3" || p.Items[0].Findings[0].Reason != plugboard.SyncReasonMissingAtPartner || !p.Items[0].Findings[0].Repaired ||
		p.Items[1].App != "" || p.Items[1].DateFinished != nil || p.Items[1].Errors[0] == "" {
		t.Errorf("runs %+v", p.Items)
	}
	n := 0
	for _, err := range c.AllReconciliationRuns(ctx, "acme-alerts", plugboard.RunListOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Errorf("all runs: %d", n)
	}
	want := []string{
		"GET /api/0/apps/acme-alerts/stats/?resolution=15m0s&since=2026-01-02T15%3A00%3A00Z&until=2026-01-02T17%3A00%3A00Z",
		"GET /api/0/apps/acme-alerts/stats/",
		"GET /api/0/apps/acme-alerts/stats/?resolution=1s",
		"GET /api/0/apps/acme-alerts/reconciliation-runs/?job=partner_sync",
		"GET /api/0/apps/acme-alerts/reconciliation-runs/",
	}
	if got := f.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestClientTokenSourceAndBaseURL(t *testing.T) {
	f := newFakeAPI(t)
	ctx := context.Background()
	// A base URL given with /api/0 and a trailing slash works the same.
	c, err := plugboard.NewClient(f.srv.URL+"/api/0/", plugboard.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: instToken, TokenType: "bearer"})),
		plugboard.WithUserAgent("acme-alerts/1.2"), plugboard.WithHTTPClient(&http.Client{Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetInstallation(ctx, "b23eb701-895a-480e-8501-d1a4f15441f8"); err != nil {
		t.Fatal(err)
	}
	failing := oauth2.ReuseTokenSource(nil, tokenSourceFunc(func() (*oauth2.Token, error) { return nil, errors.New("refresh token revoked") }))
	c, _ = plugboard.NewClient(f.srv.URL, plugboard.WithTokenSource(failing))
	if _, err := c.GetInstallation(ctx, "b23eb701-895a-480e-8501-d1a4f15441f8"); err == nil || !strings.Contains(err.Error(), "refresh token revoked") {
		t.Errorf("failing token source: %v", err)
	}
	for _, bad := range []string{"", "plugboard.example.com", "ftp://x", "http://"} {
		if _, err := plugboard.NewClient(bad); err == nil {
			t.Errorf("NewClient(%q) accepted", bad)
		}
	}
	// Path parameters are escaped.
	c = f.client(t)
	var apiErr *plugboard.APIError
	if _, err := c.GetInstallation(ctx, "../../apps/acme-alerts/stats"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("escaping: %v", err)
	}
	if got := f.requests(); len(got) < 1 || !strings.HasPrefix(got[len(got)-1], "GET /api/0/installations/..%2F..%2Fapps") {
		t.Errorf("requests %q", got)
	}
}

type tokenSourceFunc func() (*oauth2.Token, error)

func (f tokenSourceFunc) Token() (*oauth2.Token, error) { return f() }
