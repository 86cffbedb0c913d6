package plugboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/plugboard"
)

const instUUID = "b23eb701-895a-480e-8501-d1a4f15441f8"

// provisioningRequest is a request to a provisioning URL as Plugboard
// sends it: signed like a webhook, with its event header.
func provisioningRequest(t *testing.T, secret, method, path, event, payload string) *http.Request {
	t.Helper()
	now := time.Now()
	sig, err := plugboard.Sign(secret, "prov_"+instUUID, now, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(method, path, strings.NewReader(payload))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Webhook-Id", "prov_"+instUUID)
	r.Header.Set("Webhook-Timestamp", strconv.FormatInt(now.Unix(), 10))
	r.Header.Set("Webhook-Signature", sig)
	r.Header.Set("Plugboard-Event", event)
	r.Header.Set("Plugboard-Installation", instUUID)
	r.Header.Set("Idempotency-Key", instUUID)
	return r
}

// fakeProvisioner answers as its fields say and records what it was asked.
type fakeProvisioner struct {
	result       *plugboard.ProvisionResult
	err          error
	provisioned  []*plugboard.ProvisionRequest
	plans        []*plugboard.PlanChangeRequest
	deprovisions []string
}

func (f *fakeProvisioner) Provision(_ context.Context, r *plugboard.ProvisionRequest) (*plugboard.ProvisionResult, error) {
	f.provisioned = append(f.provisioned, r)
	return f.result, f.err
}

func (f *fakeProvisioner) ChangePlan(_ context.Context, r *plugboard.PlanChangeRequest) (*plugboard.ProvisionResult, error) {
	f.plans = append(f.plans, r)
	return f.result, f.err
}

func (f *fakeProvisioner) Deprovision(_ context.Context, id string, _ *plugboard.Event) error {
	f.deprovisions = append(f.deprovisions, id)
	return f.err
}

func TestProvisionHandler(t *testing.T) {
	provision := `{"installation":{"uuid":"` + instUUID + `"},"organization":{"slug":"acme","name":"Acme"},"plan":{"slug":"pro","name":"Pro"},` +
		`"scopes":["org:read"],"grant":{"code":"pbg_x","expiresAt":"2030-01-01T00:00:00Z"},"callbackUrl":"https://plugboard.example/api/0/installations/` + instUUID + `/"}`
	plan := `{"installation":{"uuid":"` + instUUID + `"},"plan":{"slug":"free","name":"Free"},"previousPlan":{"slug":"pro","name":"Pro"}}`
	deprovision := `{"id":"d1","type":"installation.deprovision","timestamp":"2030-01-01T00:00:00Z","installation":{"uuid":"` + instUUID + `"},"data":{"reason":"uninstalled"}}`
	tests := []struct {
		name    string
		f       fakeProvisioner
		req     *http.Request
		status  int
		answer  string // a substring of the answer
		inspect func(t *testing.T, f *fakeProvisioner)
	}{
		{"sync", fakeProvisioner{result: &plugboard.ProvisionResult{Config: plugboard.Vars(map[string]string{"ACME_URL": "https://x"}), Message: "Ready"}},
			provisioningRequest(t, secretA, "POST", "/provision", plugboard.EventInstallationProvision, provision), 200, `"config":{"ACME_URL":"https://x"}`,
			func(t *testing.T, f *fakeProvisioner) {
				r := f.provisioned[0]
				if r.Installation.UUID != instUUID || r.Organization.Slug != "acme" || r.Plan.Slug != "pro" || r.Grant.Code != "pbg_x" || r.CallbackURL == "" {
					t.Errorf("request %+v", r)
				}
			}},
		{"async", fakeProvisioner{result: &plugboard.ProvisionResult{Async: true, Message: "Soon"}},
			provisioningRequest(t, secretA, "POST", "/provision", plugboard.EventInstallationProvision, provision), 202, `"message":"Soon"`, nil},
		{"refused", fakeProvisioner{err: plugboard.Refuse("No room at the inn.")},
			provisioningRequest(t, secretA, "POST", "/provision", plugboard.EventInstallationProvision, provision), 422, `"message":"No room at the inn."`, nil},
		{"failed", fakeProvisioner{err: errors.New("database on fire")},
			provisioningRequest(t, secretA, "POST", "/provision", plugboard.EventInstallationProvision, provision), 500, "provisioning failed", nil},
		{"forged", fakeProvisioner{}, provisioningRequest(t, secretB, "POST", "/provision", plugboard.EventInstallationProvision, provision), 401, "signature",
			func(t *testing.T, f *fakeProvisioner) {
				if len(f.provisioned) != 0 {
					t.Error("a forged request reached the provisioner")
				}
			}},
		{"plan change", fakeProvisioner{result: &plugboard.ProvisionResult{Message: "On Free"}},
			provisioningRequest(t, secretA, "PUT", "/provision/"+instUUID, plugboard.EventInstallationChangePlan, plan), 200, `"message":"On Free"`,
			func(t *testing.T, f *fakeProvisioner) {
				if r := f.plans[0]; r.Plan.Slug != "free" || r.PreviousPlan.Slug != "pro" || r.Installation.UUID != instUUID {
					t.Errorf("plan change %+v", r)
				}
			}},
		{"plan refused", fakeProvisioner{err: &plugboard.Refusal{Message: "Call sales.", Status: 403}},
			provisioningRequest(t, secretA, "PUT", "/provision/"+instUUID, plugboard.EventInstallationChangePlan, plan), 403, "Call sales.", nil},
		{"deprovision", fakeProvisioner{}, provisioningRequest(t, secretA, "DELETE", "/provision/"+instUUID, plugboard.EventInstallationDeprovision, deprovision), 204, "",
			func(t *testing.T, f *fakeProvisioner) {
				if len(f.deprovisions) != 1 || f.deprovisions[0] != instUUID {
					t.Errorf("deprovisions %v", f.deprovisions)
				}
			}},
		{"deprovision fails", fakeProvisioner{err: errors.New("later")},
			provisioningRequest(t, secretA, "DELETE", "/provision/"+instUUID, plugboard.EventInstallationDeprovision, deprovision), 500, "retried", nil},
		{"a webhook is not a provisioning request", fakeProvisioner{},
			provisioningRequest(t, secretA, "POST", "/provision", "issue.created", provision), 405, "not a provisioning request", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			rec := httptest.NewRecorder()
			plugboard.ProvisionHandler(secretA, &f).ServeHTTP(rec, tt.req)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.answer) {
				t.Fatalf("answer %d %s, want %d with %q", rec.Code, rec.Body, tt.status, tt.answer)
			}
			if rec.Code != http.StatusNoContent && !json.Valid(rec.Body.Bytes()) {
				t.Errorf("answer is not JSON: %s", rec.Body)
			}
			if tt.inspect != nil {
				tt.inspect(t, &f)
			}
		})
	}
}
