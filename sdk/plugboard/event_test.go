package plugboard_test

import (
	"errors"
	"testing"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

func TestLifecycleEvents(t *testing.T) {
	inst := `"installation":{"app":{"clientId":"9f86d081","name":"Acme Alerts","slug":"acme-alerts"},"organization":{"id":"8","name":"Globex","slug":"globex"},` +
		`"plan":{"currency":"USD","interval":"month","name":"Team","price":"29.00","slug":"team"},"scopes":["org:read"],"status":"installed","uuid":"b23eb701-895a-480e-8501-d1a4f15441f8"}`
	env := func(typ, data string, installation string) []byte {
		return []byte(`{"id":"d1","type":"` + typ + `","timestamp":"2026-01-02T15:04:05Z","installation":` + installation + `,"data":` + data + `}`)
	}
	ref := `{"uuid":"b23eb701-895a-480e-8501-d1a4f15441f8"}`

	ev, err := plugboard.ParseEvent(env("installation.updated", `{`+inst+`,"previousPlan":{"currency":"USD","interval":"month","name":"Pro","price":"9.00","slug":"pro"}}`, ref))
	if err != nil {
		t.Fatal(err)
	}
	up, err := ev.InstallationUpdated()
	if err != nil || up.PreviousPlan.Slug != "pro" || up.Installation.Plan.Slug != "team" || up.Installation.App.ClientID != "9f86d081" ||
		up.Installation.Organization.ID != "8" || up.Installation.Status != plugboard.StatusInstalled {
		t.Errorf("updated %+v %v", up, err)
	}

	// From no plan to a plan: previousPlan is null.
	ev, _ = plugboard.ParseEvent(env("installation.updated", `{`+inst+`,"previousPlan":null}`, ref))
	if up, err := ev.InstallationUpdated(); err != nil || up.PreviousPlan != nil {
		t.Errorf("updated from no plan %+v %v", up, err)
	}

	ev, _ = plugboard.ParseEvent(env("installation.deleted", `{`+inst+`,"reason":"uninstalled"}`, ref))
	if del, err := ev.InstallationDeleted(); err != nil || del.Reason != plugboard.ReasonUninstalled || del.Resent || del.Installation.UUID != ev.InstallationUUID() {
		t.Errorf("deleted %+v %v", del, err)
	}

	// Reconciliation's "unknown to plugboard": no envelope installation, a
	// bare uuid in the data.
	ev, err = plugboard.ParseEvent(env("installation.deleted", `{"installation":{"uuid":"7c2e4b1a-5d3f-4e6a-8b9c-0d1e2f3a4b5c"},"reason":"unknown_to_plugboard"}`, "null"))
	if err != nil {
		t.Fatal(err)
	}
	if del, err := ev.InstallationDeleted(); err != nil || del.Reason != plugboard.ReasonUnknownToPlugboard || del.Installation.UUID != "7c2e4b1a-5d3f-4e6a-8b9c-0d1e2f3a4b5c" || ev.Installation != nil {
		t.Errorf("unknown deleted %+v %v", del, err)
	}

	// An internal integration's installation.created: no code, no plan.
	ev, _ = plugboard.ParseEvent(env("installation.created", `{"installation":{"app":{"clientId":"c","name":"N","slug":"n"},"organization":{"id":"1","name":"O","slug":"o"},"plan":null,"scopes":[],"status":"installed","uuid":"u"}}`, `{"uuid":"u"}`))
	if cr, err := ev.InstallationCreated(); err != nil || cr.Code != "" || !cr.CodeExpiresAt.IsZero() || cr.Installation.Plan != nil {
		t.Errorf("internal created %+v %v", cr, err)
	}

	// A resent installation.created.
	ev, _ = plugboard.ParseEvent(env("installation.created", `{`+inst+`,"code":"pbg_x","codeExpiresAt":"2026-01-02T15:14:05Z","resent":true}`, ref))
	if cr, err := ev.InstallationCreated(); err != nil || !cr.Resent || cr.Code != "pbg_x" {
		t.Errorf("resent created %+v %v", cr, err)
	}

	ev, _ = plugboard.ParseEvent(env("webhook.test", `{"app":{"slug":"acme-alerts"},"message":"This is a test event from Plugboard."}`, "null"))
	if wt, err := ev.WebhookTest(); err != nil || wt.App.Slug != "acme-alerts" || wt.Message == "" || ev.InstallationUUID() != "" {
		t.Errorf("test %+v %v", wt, err)
	}
	if _, err := ev.InstallationCreated(); !errors.Is(err, plugboard.ErrWrongEventType) {
		t.Errorf("wrong type: %v", err)
	}

	// Data of the wrong shape is an error, not a panic.
	ev, _ = plugboard.ParseEvent(env("installation.deleted", `{"reason":42}`, ref))
	if _, err := ev.InstallationDeleted(); err == nil {
		t.Error("bad data decoded")
	}
}

func TestParseEventRejects(t *testing.T) {
	for _, b := range []string{
		``, `null`, `[]`, `{}`, `{"id":"x"}`, `{"type":"x"}`,
		`{"id":"x","type":"y","timestamp":"yesterday","data":{}}`,
		`{"id":"x","type":"y","installation":{},"data":{}}`,
		`{"id":"x","type":"y","data":{}} {"id":"z"}`,
	} {
		if _, err := plugboard.ParseEvent([]byte(b)); !errors.Is(err, plugboard.ErrInvalidEvent) {
			t.Errorf("ParseEvent(%s) = %v", b, err)
		}
	}
	ev, err := plugboard.ParseEvent([]byte(`{"id":"x","type":"y","timestamp":"2026-01-02T15:04:05Z","installation":null,"data":null}`))
	if err != nil || string(ev.Data) != "{}" {
		t.Errorf("null data: %+v %v", ev, err)
	}
}
