package plugboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"
)

// The plugboard-event of each request Plugboard sends to an app's
// provisioning URL.
const (
	EventInstallationProvision   = "installation.provision"   // POST {provisionUrl}
	EventInstallationChangePlan  = "installation.change_plan" // PUT {provisionUrl}/{uuid}
	EventInstallationDeprovision = "installation.deprovision" // DELETE {provisionUrl}/{uuid}, a delivery
)

// HeaderIdempotencyKey is the header of a provisioning request that stays
// the same when Plugboard sends it again: the installation's uuid for a
// provision, uuid:plan for a plan change.
const HeaderIdempotencyKey = "Idempotency-Key"

// ProvisionRequest is what Plugboard POSTs to an app's provisioning URL when
// an organization installs it.
type ProvisionRequest struct {
	Installation InstallationRef `json:"installation"`
	Organization struct {
		Slug string `json:"slug"`
		Name string `json:"name"`
	} `json:"organization"`
	Plan   *PlanChoice `json:"plan"` // nil for an app without plans
	Scopes []string    `json:"scopes"`
	// Grant is the installation's install code: exchange it with
	// [OAuth2Config] for the installation's token, which sets config vars
	// and finishes an asynchronous provisioning. The code went through no
	// redirect, so exchange it without a redirect_uri (an OAuth2Config
	// whose RedirectURL is "").
	Grant struct {
		Code      string    `json:"code"`
		ExpiresAt time.Time `json:"expiresAt"`
	} `json:"grant"`
	// CallbackURL is the installation's API URL, where
	// [Client.CompleteProvisioning] finishes a provisioning answered 202.
	CallbackURL string `json:"callbackUrl"`
}

// PlanChoice names a plan in a provisioning request.
type PlanChoice struct {
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// PlanChangeRequest is what Plugboard PUTs to {provisionUrl}/{uuid} before
// an organization's installation moves to another plan.
type PlanChangeRequest struct {
	Installation InstallationRef `json:"installation"`
	Plan         PlanChoice      `json:"plan"`
	PreviousPlan *PlanChoice     `json:"previousPlan"`
}

// ProvisionResult is a provisioning handler's yes. Config vars, Message,
// ExternalID and ConfigURL are all optional; Message is shown to the
// organization.
type ProvisionResult struct {
	// Async answers 202: the resource is still being made. Set the config
	// vars and call [Client.CompleteProvisioning] when it is ready (within
	// Plugboard's provisioning deadline, 12 hours by default).
	Async bool `json:"-"`
	// Config vars: names start with the app's config prefix (PAGER_BOT_),
	// values are at most 8 KiB; an empty value is kept, and in a plan
	// change a nil one deletes the var.
	Config     map[string]*string `json:"config,omitempty"`
	Message    string             `json:"message,omitempty"`
	ExternalID string             `json:"externalId,omitempty"`
	ConfigURL  string             `json:"configUrl,omitempty"`
}

// Vars makes a Config map from plain values.
func Vars(kv map[string]string) map[string]*string {
	out := make(map[string]*string, len(kv))
	for k, v := range kv {
		out[k] = &v
	}
	return out
}

// Refusal is the error a provisioning handler returns to say no: the
// install (or the plan change) is refused, and Plugboard shows Message to
// the organization's admin as it is.
type Refusal struct {
	Message string
	Status  int // a 4xx; 422 when 0
}

func (r *Refusal) Error() string { return "plugboard: refused: " + r.Message }

// Refuse returns a [Refusal] with message.
func Refuse(message string) error { return &Refusal{Message: message} }

// Provisioner is what a partner implements to be provisioned Heroku-style.
// Every method must be idempotent: Plugboard sends a request again when an
// answer was lost, with the same Idempotency-Key (the installation's uuid
// for Provision). Return a [Refusal] to say no; any other error is a
// failure: a provision then fails (and a Deprovision follows), a plan
// change stays undone, a deprovision is retried.
type Provisioner interface {
	Provision(ctx context.Context, req *ProvisionRequest) (*ProvisionResult, error)
	ChangePlan(ctx context.Context, req *PlanChangeRequest) (*ProvisionResult, error)
	// Deprovision drops what was made for the installation. It is called
	// after an uninstall and after a provision that failed or timed out,
	// possibly for an installation Provision never saw or saw twice.
	Deprovision(ctx context.Context, installationUUID string, ev *Event) error
}

// ProvisionHandler returns the http.Handler of an app's provisioning URL,
// mounted at that path and the paths below it: it verifies every request's
// signature with secret (and any WithSecrets), like [Handler], and calls p:
//
//   - POST {provisionUrl}: Provision, answered 200 with the result (202
//     when Async), 422 {message} for a [Refusal], 500 for another error;
//   - PUT {provisionUrl}/{uuid}: ChangePlan, answered alike;
//   - DELETE {provisionUrl}/{uuid}: Deprovision, answered 204 (or 500, and
//     Plugboard retries on its usual schedule).
//
// Answer quickly: Plugboard waits 25 s at most (PLUGBOARD_PROVISION_TIMEOUT);
// when making the resource takes longer, answer Async and finish with
// [Client.CompleteProvisioning].
func ProvisionHandler(secret string, p Provisioner, opts ...HandlerOption) http.Handler {
	cfg, v := newHandlerConfig(secret, opts)
	return &provisionHandler{v: v, p: p, maxBody: cfg.maxBody, log: cfg.log}
}

type provisionHandler struct {
	v       *Verifier
	p       Provisioner
	maxBody int64
	log     *slog.Logger
}

func (h *provisionHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		h.answer(w, r, http.StatusRequestEntityTooLarge, map[string]string{"message": "the body is too large"}, err)
		return
	}
	if err := h.v.Verify(r.Header, body); err != nil {
		h.answer(w, r, http.StatusUnauthorized, map[string]string{"message": err.Error()}, err)
		return
	}
	ctx := r.Context()
	event := headerValue(r.Header, HeaderEvent)
	switch {
	case r.Method == http.MethodPost && event == EventInstallationProvision:
		var req ProvisionRequest
		if err := json.Unmarshal(body, &req); err != nil || req.Installation.UUID == "" {
			h.answer(w, r, http.StatusBadRequest, map[string]string{"message": "not a provisioning request"}, err)
			return
		}
		res, err := h.p.Provision(ctx, &req)
		h.result(w, r, res, err)
	case r.Method == http.MethodPut && event == EventInstallationChangePlan:
		var req PlanChangeRequest
		if err := json.Unmarshal(body, &req); err != nil || req.Plan.Slug == "" {
			h.answer(w, r, http.StatusBadRequest, map[string]string{"message": "not a plan change"}, err)
			return
		}
		if req.Installation.UUID == "" {
			req.Installation.UUID = path.Base(r.URL.Path)
		}
		res, err := h.p.ChangePlan(ctx, &req)
		h.result(w, r, res, err)
	case r.Method == http.MethodDelete && event == EventInstallationDeprovision:
		uuid := path.Base(r.URL.Path)
		ev, err := ParseEvent(body)
		if err != nil {
			h.answer(w, r, http.StatusBadRequest, map[string]string{"message": err.Error()}, err)
			return
		}
		if ev.Installation != nil {
			uuid = ev.Installation.UUID
		}
		if err := h.p.Deprovision(ctx, uuid, ev); err != nil {
			h.answer(w, r, http.StatusInternalServerError, map[string]string{"message": "deprovisioning failed; it will be retried"}, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "POST, PUT, DELETE")
		h.answer(w, r, http.StatusMethodNotAllowed, map[string]string{"message": "not a provisioning request: " + r.Method + " " + event}, nil)
	}
}

// result answers a Provision or ChangePlan.
func (h *provisionHandler) result(w http.ResponseWriter, r *http.Request, res *ProvisionResult, err error) {
	var refusal *Refusal
	switch {
	case errors.As(err, &refusal):
		status := refusal.Status
		if status < 400 || status > 499 {
			status = http.StatusUnprocessableEntity
		}
		h.answer(w, r, status, map[string]string{"message": refusal.Message}, nil)
	case err != nil:
		// The message shows in Plugboard's log of the failure; the error
		// itself may hold internals, so it goes to the logger only.
		h.answer(w, r, http.StatusInternalServerError, map[string]string{"message": "provisioning failed"}, err)
	case res == nil:
		h.answer(w, r, http.StatusOK, map[string]any{}, nil)
	case res.Async:
		h.answer(w, r, http.StatusAccepted, map[string]string{"message": res.Message}, nil)
	default:
		h.answer(w, r, http.StatusOK, res, nil)
	}
}

func (h *provisionHandler) answer(w http.ResponseWriter, r *http.Request, status int, body any, err error) {
	if err != nil && h.log != nil {
		level := slog.LevelWarn
		if status >= 500 {
			level = slog.LevelError
		}
		h.log.Log(r.Context(), level, "plugboard: provisioning request", "method", r.Method, "status", status,
			"installation", r.Header.Get(HeaderInstallation), "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// ConfigVars returns an installation's config vars. An installation's own
// token, the organization's admins and the host's service tokens may read
// them.
func (c *Client) ConfigVars(ctx context.Context, uuid string) (*ConfigVars, error) {
	var out ConfigVars
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/installations/" + esc(uuid) + "/config-vars/"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetConfigVars changes an installation's config vars (a nil value deletes
// one; those not named stay) and returns them all. Only the installation's
// own access token may: make the client [WithToken] or [WithTokenSource].
func (c *Client) SetConfigVars(ctx context.Context, uuid string, vars map[string]*string) (*ConfigVars, error) {
	for name := range vars {
		if strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("plugboard: a config var without a name")
		}
	}
	var out ConfigVars
	if _, err := c.do(ctx, request{method: http.MethodPut, path: "/installations/" + esc(uuid) + "/config-vars/",
		body: map[string]any{"vars": vars}}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CompleteProvisioning finishes a provisioning the app answered with 202
// (ProvisionResult.Async): the installation becomes installed and the app
// is sent installation.created. Set the config vars first.
func (c *Client) CompleteProvisioning(ctx context.Context, uuid string) (*Installation, error) {
	installed := StatusInstalled
	return c.UpdateInstallation(ctx, uuid, InstallationUpdate{Status: &installed})
}
