package plugboard_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

const suspendedJSON = `{"uuid":"b23eb701-895a-480e-8501-d1a4f15441f8","app":{"id":"5","slug":"acme-alerts","name":"Acme Alerts"},` +
	`"organization":{"id":"8","slug":"globex","name":"Globex"},"status":"installed","statusReason":"","syncState":"in_sync","syncReason":"",` +
	`"syncCheckedAt":null,"plan":null,"scopes":["org:read"],"externalId":"","configUrl":"","dateCreated":"2026-01-02T15:04:05.123456Z",` +
	`"dateUpdated":"2026-01-03T09:00:00Z","dateVerified":null,"dateDeleted":null,` +
	`"suspension":{"by":"app","reason":"Migrating accounts.","dateSuspended":"2026-01-03T09:00:00Z","liftableBy":["app","organization","operator"]}}`

// The app suspends its installation and lifts the suspension with its own
// credentials; an admin's suspension is the API's 403 not_suspender.
func TestClientSuspendsAndLifts(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+string(body)))
		mu.Unlock()
		if id, _, ok := r.BasicAuth(); !ok || id != clientID {
			problem(w, r, 401, "not_authenticated", "Send app credentials.", nil, nil)
			return
		}
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/suspensions/"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(suspendedJSON))
		case r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/7c2e4b1a-"):
			problem(w, r, 403, "not_suspender", "An admin of the organization suspended the installation.", nil, nil)
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		default:
			problem(w, r, 404, "not_found", "Nothing here.", nil, nil)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := plugboard.NewClient(srv.URL, plugboard.WithClientCredentials(clientID, clientSecret))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const uuid = "b23eb701-895a-480e-8501-d1a4f15441f8"
	inst, err := c.SuspendInstallation(ctx, uuid, "Migrating accounts.")
	if err != nil || inst.Suspension == nil || inst.Suspension.By != plugboard.SuspendedByApp || inst.Suspension.Reason != "Migrating accounts." ||
		len(inst.Suspension.LiftableBy) != 3 || inst.Suspension.DateSuspended.IsZero() {
		t.Fatalf("suspended %+v %v", inst, err)
	}
	if _, err := c.SuspendInstallation(ctx, uuid, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.UnsuspendInstallation(ctx, uuid); err != nil {
		t.Fatal(err)
	}
	err = c.UnsuspendInstallation(ctx, "7c2e4b1a-5d3f-4e6a-8b9c-0d1e2f3a4b5c")
	var perr *plugboard.APIError
	if !errors.As(err, &perr) || perr.Code != "not_suspender" || perr.Status != 403 {
		t.Errorf("lifting an admin's suspension: %v", err)
	}
	want := []string{
		`POST /api/0/installations/` + uuid + `/suspensions/ {"reason":"Migrating accounts."}`,
		`POST /api/0/installations/` + uuid + `/suspensions/`,
		`DELETE /api/0/installations/` + uuid + `/suspensions/`,
		`DELETE /api/0/installations/7c2e4b1a-5d3f-4e6a-8b9c-0d1e2f3a4b5c/suspensions/`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSuspensionEvents(t *testing.T) {
	inst := `"installation":{"app":{"clientId":"9f86d081","name":"Acme Alerts","slug":"acme-alerts"},"organization":{"id":"8","name":"Globex","slug":"globex"},` +
		`"plan":null,"scopes":["org:read"],"status":"installed","uuid":"b23eb701-895a-480e-8501-d1a4f15441f8"}`
	sp := `"suspension":{"by":"organization","reason":"Audit.","dateSuspended":"2026-01-03T09:00:00Z"}`
	ev, err := plugboard.ParseEvent([]byte(`{"id":"d1","type":"installation.suspended","timestamp":"2026-01-03T09:00:00Z",` +
		`"installation":{"uuid":"b23eb701-895a-480e-8501-d1a4f15441f8"},"data":{` + inst + `,` + sp + `}}`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ev.InstallationSuspended()
	if err != nil || s.Suspension.By != plugboard.SuspendedByOrganization || s.Suspension.Reason != "Audit." || s.Installation.UUID != ev.InstallationUUID() {
		t.Errorf("suspended %+v %v", s, err)
	}
	if _, err := ev.InstallationUnsuspended(); !errors.Is(err, plugboard.ErrWrongEventType) {
		t.Errorf("wrong type: %v", err)
	}
	ev, _ = plugboard.ParseEvent([]byte(`{"id":"d2","type":"installation.unsuspended","timestamp":"2026-01-03T10:00:00Z",` +
		`"installation":{"uuid":"b23eb701-895a-480e-8501-d1a4f15441f8"},"data":{` + inst + `,` + sp + `,"liftedBy":"operator"}}`))
	if u, err := ev.InstallationUnsuspended(); err != nil || u.LiftedBy != plugboard.SuspendedByOperator || u.Suspension.By != plugboard.SuspendedByOrganization {
		t.Errorf("unsuspended %+v %v", u, err)
	}
}
