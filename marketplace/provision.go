package marketplace

// Heroku-style provisioning. An app that declares a provisionUrl is asked
// before an installation counts: installing POSTs {provisionUrl} and waits
// for the partner's answer (PLUGBOARD_PROVISION_TIMEOUT); changing plan
// PUTs {provisionUrl}/{uuid} first; uninstalling DELETEs
// {provisionUrl}/{uuid} as a delivery, retried on the usual schedule. Every
// request is signed like a webhook, with the app's webhook secret.
//
// The installation is written, provisioning, before the call, and settled
// by the answer in a second transaction: no transaction stays open while
// the partner thinks, and an installation whose answer never came back
// (the process died) is failed and deprovisioned by reconciliation once
// PLUGBOARD_PROVISION_DEADLINE passes (reconcile_provision.go).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/webhooks"
)

// Provisioning event names: the plugboard-event header of each request to
// the provisioning endpoint.
const (
	EventInstallationProvision   = "installation.provision"
	EventInstallationChangePlan  = "installation.change_plan"
	EventInstallationDeprovision = "installation.deprovision"
)

// Reasons of provisioning.
const (
	// ReasonProvisionFailed: the provisioning call timed out, failed or
	// answered 5xx; the installation failed and was deprovisioned.
	ReasonProvisionFailed = "provision_failed"
	// ReasonProvisionTimeout: the partner answered 202 and never finished
	// within PLUGBOARD_PROVISION_DEADLINE.
	ReasonProvisionTimeout = "provision_deadline"
	// ReasonDeprovisionFailed: the deprovision DELETE ran out of retries.
	ReasonDeprovisionFailed = "deprovision_failed"
)

// ClassInvalidAnswer is the reason class of a 2xx answer Plugboard could
// not accept (not JSON, or config vars that break the rules).
const ClassInvalidAnswer = "invalid_answer"

// DetailReason is the details key of a provision_failed or
// plan_change_failed error: the reason class.
const DetailReason = "reason"

// maxMessage bounds the partner's message shown to the organization.
const maxMessage = 1000

// Provisioning makes the calls to apps' provisioning endpoints.
type Provisioning struct {
	*core
	installs  *Installs
	caller    PartnerCaller
	endpoints EndpointAdmin
}

// provisionAnswer is the body of a 2xx answer to a provisioning or plan
// change call; all of it is optional.
type provisionAnswer struct {
	Config     map[string]*string `json:"config"`
	Message    string             `json:"message"`
	ExternalID *string            `json:"externalId"`
	ConfigURL  *string            `json:"configUrl"`
}

// parseAnswer reads a 2xx answer and checks it against the app's rules;
// an empty body is an empty answer.
func parseAnswer(app *App, body []byte) (*provisionAnswer, error) {
	var ans provisionAnswer
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &ans); err != nil {
			return nil, fmt.Errorf("the answer is not a JSON object: %w", err)
		}
	}
	ans.Message = cleanMessage(ans.Message)
	f := fault.Fields{}
	checkConfigVars(f, "config", app.ConfigVarPrefix(), ans.Config)
	f.Check(len(ans.Config) > MaxConfigVars, "config", fmt.Sprintf("at most %d config vars", MaxConfigVars))
	if ans.ExternalID != nil {
		f.Check(len(*ans.ExternalID) > 200, "externalId", "must be at most 200 characters")
	}
	if ans.ConfigURL != nil {
		checkURL(f, "configUrl", *ans.ConfigURL, false)
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	return &ans, nil
}

// partnerMessage is the message of a refusal ({"message": …}), or "".
func partnerMessage(body []byte) string {
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	return cleanMessage(m.Message)
}

// cleanMessage makes the partner's message safe to show: valid UTF-8,
// trimmed, at most maxMessage bytes.
func cleanMessage(s string) string {
	s = strings.TrimSpace(strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) > maxMessage {
		s = s[:maxMessage]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

// callbackURL is the installation's API URL, where the partner finishes an
// asynchronous provisioning.
func (s *core) callbackURL(inst *Installation) string {
	return webhooks.JoinURL(s.opts.Issuer, "api", "0", "installations", inst.UUID) + "/"
}

// call sends one signed request to app's provisioning endpoint, without
// being cancelled by the caller (a browser that goes away must not leave
// the partner's answer unheard).
func (p *Provisioning) call(ctx context.Context, app *App, c webhooks.SignedCall) webhooks.CallResult {
	signer, err := p.endpoints.Signer(ctx, app.ID)
	if err != nil {
		p.log.Error("no signer for a provisioning call", "app", app.Slug, "err", err)
		return webhooks.CallResult{Class: webhooks.ClassSecret, Err: "the app's signing secret cannot be used"}
	}
	c.Timeout = p.opts.ProvisionTimeout
	c.Limit = 1 << 20
	return p.caller.Call(context.WithoutCancel(ctx), signer, c)
}

// failureClass names why a call failed: its error class, or http_status
// for an answer outside 2xx and 4xx.
func failureClass(r webhooks.CallResult) string {
	if r.Class != "" {
		return r.Class
	}
	return webhooks.ClassHTTPStatus
}

// describeFailure says in words what went wrong with a call.
func describeFailure(class string, r webhooks.CallResult, timeout time.Duration) string {
	switch class {
	case webhooks.ClassTimeout:
		return fmt.Sprintf("did not answer within %s", timeout)
	case webhooks.ClassHTTPStatus:
		return fmt.Sprintf("answered %d %s", r.Status, http.StatusText(r.Status))
	case ClassInvalidAnswer:
		return "answered with something Plugboard could not accept"
	case webhooks.ClassBlocked:
		return "is at an address Plugboard may not call"
	}
	return "could not be reached (" + class + ")"
}

// provision asks the partner to provision res's installation, written
// provisioning in a transaction that committed, and settles it by the
// answer: installed (200/201, with its config vars), provisioning (202),
// removed altogether (4xx: a provision_refused error with the partner's
// message) or failed and deprovisioned (anything else: provision_failed).
func (p *Provisioning) provision(ctx context.Context, a Actor, res *NewInstallation) error {
	inst := res.Installation
	app, org := inst.App, inst.Organization
	body := map[string]any{
		"installation": map[string]any{"uuid": inst.UUID},
		"organization": map[string]any{"slug": org.Slug, "name": org.Name},
		"plan":         nil,
		"scopes":       []string(inst.Scopes),
		"grant":        map[string]any{"code": res.Code, "expiresAt": res.CodeExpiresAt},
		"callbackUrl":  p.callbackURL(inst),
	}
	if inst.Plan != nil {
		body["plan"] = map[string]any{"slug": inst.Plan.Slug, "name": inst.Plan.Name}
	}
	if inst.Scopes == nil {
		body["scopes"] = []string{}
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encoding the provisioning request: %w", err)
	}
	r := p.call(ctx, app, webhooks.SignedCall{Method: http.MethodPost, URL: app.ProvisionURL, ID: "prov_" + inst.UUID,
		Event: EventInstallationProvision, Installation: inst.UUID, IdempotencyKey: inst.UUID, Body: raw})
	ctx = context.WithoutCancel(ctx)
	switch {
	case r.Class == "" && (r.Status == http.StatusOK || r.Status == http.StatusCreated):
		ans, err := parseAnswer(app, r.Body)
		if err != nil {
			p.log.Warn("provisioning answer refused", "app", app.Slug, "installation", inst.UUID, "err", err)
			return p.failed(ctx, a, res, ClassInvalidAnswer, r)
		}
		return p.installed(ctx, a, res, ans)
	case r.Class == "" && r.Status == http.StatusAccepted:
		return p.accepted(ctx, a, res, partnerMessage(r.Body))
	case r.Class == "" && r.Status >= 400 && r.Status < 500:
		return p.refused(ctx, a, res, partnerMessage(r.Body), r.Status)
	}
	return p.failed(ctx, a, res, failureClass(r), r)
}

// settle locks res's installation and runs fn on it while it is still
// provisioning (an uninstall may have ended it meanwhile: then nothing is
// changed, and the installation is returned as it is).
func (p *Provisioning) settle(ctx context.Context, res *NewInstallation, fn func(tx *gorm.DB, inst *Installation) error) error {
	return p.publishTx(ctx, func(tx *gorm.DB) error {
		inst, err := p.installs.loadInstallation(ctx, tx, res.Installation.UUID, true)
		if err != nil {
			return err
		}
		res.Installation = inst
		if inst.Status != InstallProvisioning {
			return nil
		}
		return fn(tx, inst)
	})
}

// installed settles a 200/201: the installation is installed, holds the
// answer's config vars, and installation.created goes out with the code.
func (p *Provisioning) installed(ctx context.Context, a Actor, res *NewInstallation, ans *provisionAnswer) error {
	return p.settle(ctx, res, func(tx *gorm.DB, inst *Installation) error {
		now := p.now()
		changes := map[string]any{"status": InstallInstalled, "verified_at": now, "updated_at": now, "provision_message": ans.Message}
		inst.Status, inst.VerifiedAt, inst.UpdatedAt, inst.ProvisionMessage = InstallInstalled, &now, now, ans.Message
		if ans.ExternalID != nil {
			changes["external_id"], inst.ExternalID = *ans.ExternalID, *ans.ExternalID
		}
		if ans.ConfigURL != nil {
			changes["config_url"], inst.ConfigURL = *ans.ConfigURL, *ans.ConfigURL
		}
		if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(changes).Error; err != nil {
			return fmt.Errorf("installing a provisioned installation: %w", err)
		}
		if _, err := p.applyVars(ctx, tx, Actor{App: inst.App}, inst, ans.Config); err != nil {
			return err
		}
		if err := p.installs.lifecycle(ctx, tx, inst, EventInstallationCreated,
			map[string]any{"code": res.Code, "codeExpiresAt": res.CodeExpiresAt, "provisioned": true}); err != nil {
			return err
		}
		return p.audit(tx, a, &inst.OrganizationID, "installation.create", "installation", inst.UUID, inst.App.Slug,
			JSON{"status": inst.Status, "provisioned": true})
	})
}

// accepted settles a 202: the installation stays provisioning until the
// partner finishes (UpdateInstallation) or the deadline passes.
func (p *Provisioning) accepted(ctx context.Context, a Actor, res *NewInstallation, message string) error {
	return p.settle(ctx, res, func(tx *gorm.DB, inst *Installation) error {
		if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(map[string]any{
			"provision_message": message, "updated_at": p.now()}).Error; err != nil {
			return fmt.Errorf("recording the provisioning answer: %w", err)
		}
		inst.ProvisionMessage = message
		return p.audit(tx, a, &inst.OrganizationID, "installation.create", "installation", inst.UUID, inst.App.Slug,
			JSON{"status": inst.Status, "provisioned": false})
	})
}

// refused settles a 4xx: nothing stays behind (the installation, its code
// and any token the partner took go), and the admin reads the partner's
// message as the error's detail.
func (p *Provisioning) refused(ctx context.Context, a Actor, res *NewInstallation, message string, status int) error {
	app := res.Installation.App
	err := p.settle(ctx, res, func(tx *gorm.DB, inst *Installation) error {
		if err := tx.Delete(&Installation{}, inst.ID).Error; err != nil {
			return fmt.Errorf("removing a refused installation: %w", err)
		}
		if err := tx.Model(&App{}).Where("id = ? AND installs_count > 0", inst.AppID).
			UpdateColumn("installs_count", gorm.Expr("installs_count - 1")).Error; err != nil {
			return fmt.Errorf("counting a refused install: %w", err)
		}
		return p.audit(tx, a, &inst.OrganizationID, "installation.provision_refused", "app", idStr(app.ID), app.Slug,
			JSON{"status": status, "message": message})
	})
	if err != nil {
		return err
	}
	if message == "" {
		message = fmt.Sprintf("%s declined to set itself up for this organization (it answered %d).", app.Name, status)
	}
	return fault.Invalid(fault.ProvisionRefused, message, nil)
}

// failed settles a call that timed out, failed or answered 5xx: the
// installation failed (provision_failed), and the partner is sent a
// deprovision so it drops whatever it made.
func (p *Provisioning) failed(ctx context.Context, a Actor, res *NewInstallation, class string, r webhooks.CallResult) error {
	app := res.Installation.App
	err := p.settle(ctx, res, func(tx *gorm.DB, inst *Installation) error {
		if err := p.installs.endInstallation(ctx, tx, a, inst, InstallFailed, ReasonProvisionFailed); err != nil {
			return err
		}
		return p.audit(tx, a, &inst.OrganizationID, "installation.provision_failed", "installation", inst.UUID, app.Slug,
			JSON{"reason": class, "status": r.Status, "error": r.Err})
	})
	if err != nil {
		return err
	}
	return (&fault.Error{Kind: fault.KindUpstream, Code: fault.ProvisionFailed,
		Message: fmt.Sprintf("%s could not be set up: its provisioning endpoint %s. Nothing was installed, and %s was asked to remove anything it made; try again later.",
			app.Name, describeFailure(class, r, p.opts.ProvisionTimeout), app.Name)}).With(DetailReason, class)
}

// deprovision publishes the DELETE {provisionUrl}/{uuid} of an ended
// installation in tx: a delivery, signed, retried and logged as
// installation.deprovision.
func (p *Provisioning) deprovision(ctx context.Context, tx *gorm.DB, inst *Installation, reason string) error {
	data := map[string]any{"installation": lifecycleInstallation(inst), "reason": reason}
	_, err := p.outbox.Publish(ctx, tx, webhooks.NewEvent{OrganizationID: inst.OrganizationID, Type: EventInstallationDeprovision,
		Data: data, InstallationID: inst.ID, AppID: inst.AppID, CreatedBy: "plugboard",
		Target: &webhooks.Target{Method: http.MethodDelete, URL: webhooks.JoinURL(inst.App.ProvisionURL, inst.UUID), InstallationUUID: inst.UUID}})
	if err != nil {
		return fmt.Errorf("publishing the deprovision of %s: %w", inst.UUID, err)
	}
	return nil
}

// askPlanChange asks the app's provisioning endpoint, before anything is
// written, whether installation id may move to plan planRef: PUT
// {provisionUrl}/{uuid} {plan}. It returns nil when there is nothing to
// ask (no provisionUrl, the same plan, or a request the update refuses
// anyway); a 4xx is plan_change_refused, a failure plan_change_failed.
func (p *Provisioning) askPlanChange(ctx context.Context, a Actor, id, planRef string) (*provisionAnswer, error) {
	inst, err := p.installs.loadInstallation(ctx, p.db, id, false)
	if err != nil {
		return nil, nil
	}
	if inst.App == nil || inst.App.ProvisionURL == "" || !inst.Live() {
		return nil, nil
	}
	if sd, err := p.installs.sideOf(ctx, p.db, a, inst); err != nil || sd != sideAdmin {
		return nil, nil // the update says why
	}
	_, plan, err := p.installs.installable(ctx, p.db, a, *inst.Organization, idStr(inst.AppID), planRef)
	if err != nil || plan == nil || (inst.PlanID != nil && *inst.PlanID == plan.ID) {
		return nil, nil
	}
	raw, err := json.Marshal(map[string]any{"plan": map[string]any{"slug": plan.Slug, "name": plan.Name},
		"previousPlan": planBrief(inst.Plan), "installation": map[string]any{"uuid": inst.UUID}})
	if err != nil {
		return nil, fmt.Errorf("encoding the plan change: %w", err)
	}
	r := p.call(ctx, inst.App, webhooks.SignedCall{Method: http.MethodPut, URL: webhooks.JoinURL(inst.App.ProvisionURL, inst.UUID),
		ID: "plan_" + inst.UUID + "_" + plan.Slug + "_" + fmt.Sprint(p.now().UnixMilli()), Event: EventInstallationChangePlan,
		Installation: inst.UUID, IdempotencyKey: inst.UUID + ":" + plan.Slug, Body: raw})
	app := inst.App
	switch {
	case r.Class == "" && r.Status >= 200 && r.Status < 300:
		ans, err := parseAnswer(app, r.Body)
		if err != nil {
			p.log.Warn("plan change answer refused", "app", app.Slug, "installation", inst.UUID, "err", err)
			return nil, p.planFailed(ctx, a, inst, ClassInvalidAnswer, r)
		}
		return ans, nil
	case r.Class == "" && r.Status >= 400 && r.Status < 500:
		msg := partnerMessage(r.Body)
		if err := p.tx(context.WithoutCancel(ctx), func(tx *gorm.DB) error {
			return p.audit(tx, a, &inst.OrganizationID, "installation.plan_change_refused", "installation", inst.UUID, app.Slug,
				JSON{"plan": plan.Slug, "status": r.Status, "message": msg})
		}); err != nil {
			return nil, err
		}
		if msg == "" {
			msg = fmt.Sprintf("%s declined the move to %s (it answered %d).", app.Name, plan.Name, r.Status)
		}
		return nil, fault.Conflict(fault.PlanChangeRefused, msg)
	}
	return nil, p.planFailed(ctx, a, inst, failureClass(r), r)
}

func (p *Provisioning) planFailed(ctx context.Context, a Actor, inst *Installation, class string, r webhooks.CallResult) error {
	if err := p.tx(context.WithoutCancel(ctx), func(tx *gorm.DB) error {
		return p.audit(tx, a, &inst.OrganizationID, "installation.plan_change_failed", "installation", inst.UUID, inst.App.Slug,
			JSON{"reason": class, "status": r.Status, "error": r.Err})
	}); err != nil {
		return err
	}
	return (&fault.Error{Kind: fault.KindUpstream, Code: fault.PlanChangeFailed,
		Message: fmt.Sprintf("The plan was not changed: %s's provisioning endpoint %s. Try again later.",
			inst.App.Name, describeFailure(class, r, p.opts.ProvisionTimeout))}).With(DetailReason, class)
}

// applyPlanAnswer adds what the partner's yes to a plan change set (its
// message, externalId, configUrl) to an update's changes; config vars are
// applied apart.
func applyPlanAnswer(changes map[string]any, inst *Installation, ans *provisionAnswer) {
	if ans.Message != "" {
		changes["provision_message"], inst.ProvisionMessage = ans.Message, ans.Message
	}
	if ans.ExternalID != nil {
		changes["external_id"], inst.ExternalID = *ans.ExternalID, *ans.ExternalID
	}
	if ans.ConfigURL != nil {
		changes["config_url"], inst.ConfigURL = *ans.ConfigURL, *ans.ConfigURL
	}
}

func planBrief(p *Plan) any {
	if p == nil {
		return nil
	}
	return map[string]any{"slug": p.Slug, "name": p.Name}
}
