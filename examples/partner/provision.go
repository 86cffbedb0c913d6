package main

// Heroku-style provisioning: with provisionUrl http://localhost:3000/provision
// registered, Plugboard asks this service before an installation counts. It
// makes an "account" for the organization and answers with config vars
// (synchronously, or with 202 and a callback when PROVISION_ASYNC is set),
// agrees to plan changes except to plans whose slug starts with
// "enterprise", and drops the account when it is deprovisioned. Every
// method is idempotent: Plugboard may send a request again.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"golang.org/x/oauth2"

	plugboard "github.com/plugboard/plugboard/sdk/plugboard"
)

// provisioner is the partner's plugboard.Provisioner.
type provisioner struct{ p *Partner }

// Provision makes (or, for a repeat, finds) the organization's account.
func (pr provisioner) Provision(ctx context.Context, req *plugboard.ProvisionRequest) (*plugboard.ProvisionResult, error) {
	p := pr.p
	id := req.Installation.UUID
	p.mu.Lock()
	acct, again := p.acct[id]
	p.mu.Unlock()
	if !again {
		// The code in the request is the installation's: exchange it now,
		// before answering, so the token is ours whatever happens next.
		// No redirect_uri: this code never went through a redirect.
		exchange := *p.oauth
		exchange.RedirectURL = ""
		tok, err := exchange.Exchange(ctx, req.Grant.Code)
		if err != nil {
			return nil, fmt.Errorf("exchanging the provisioning code: %w", err)
		}
		acct = &Account{Installation: id, Org: req.Organization.Slug, Token: tok, Verified: true, Vars: pr.vars(id)}
		if req.Plan != nil {
			acct.Plan = req.Plan.Slug
		}
		p.mu.Lock()
		p.acct[id] = acct
		p.mu.Unlock()
		p.log.Info("provisioned", "installation", id, "org", acct.Org)
	}
	res := &plugboard.ProvisionResult{Message: "Your " + p.cfg.AppName + " account for " + req.Organization.Name + " is ready.",
		ExternalID: "acct_" + req.Organization.Slug, ConfigURL: p.cfg.PublicURL + "/"}
	if !p.cfg.ProvisionAsync {
		res.Config = plugboard.Vars(acct.Vars)
		return res, nil
	}
	if !again {
		// Slow to make: say so now, finish in the background.
		go pr.finish(context.WithoutCancel(ctx), acct)
	}
	return &plugboard.ProvisionResult{Async: true, Message: "Creating your " + p.cfg.AppName + " account; this takes a moment."}, nil
}

// finish completes an asynchronous provisioning: the config vars, then
// installed, with the installation's own token.
func (pr provisioner) finish(ctx context.Context, acct *Account) {
	p := pr.p
	time.Sleep(p.cfg.ProvisionDelay)
	client, err := pr.client(ctx, acct.Token)
	if err == nil {
		_, err = client.SetConfigVars(ctx, acct.Installation, plugboard.Vars(acct.Vars))
	}
	if err == nil {
		_, err = client.CompleteProvisioning(ctx, acct.Installation)
	}
	if err != nil {
		// Plugboard fails the installation at its deadline and deprovisions.
		p.log.Error("finishing provisioning", "installation", acct.Installation, "err", err)
		return
	}
	p.log.Info("provisioned, asynchronously", "installation", acct.Installation)
}

// ChangePlan agrees to any plan but an enterprise one, and says so in a
// config var.
func (pr provisioner) ChangePlan(ctx context.Context, req *plugboard.PlanChangeRequest) (*plugboard.ProvisionResult, error) {
	if strings.HasPrefix(req.Plan.Slug, "enterprise") {
		return nil, plugboard.Refuse("Enterprise plans are set up with our sales team: write to sales@partner.example.")
	}
	p := pr.p
	p.mu.Lock()
	if acct, ok := p.acct[req.Installation.UUID]; ok {
		acct.Plan = req.Plan.Slug
	}
	p.mu.Unlock()
	return &plugboard.ProvisionResult{Message: "You are on " + req.Plan.Name + " now.",
		Config: plugboard.Vars(map[string]string{p.cfg.ConfigPrefix + "PLAN": req.Plan.Slug})}, nil
}

// Deprovision drops the account; one never made (a provision that timed
// out before it got here) or dropped already is fine too.
func (pr provisioner) Deprovision(ctx context.Context, id string, ev *plugboard.Event) error {
	p := pr.p
	p.mu.Lock()
	_, had := p.acct[id]
	delete(p.acct, id)
	p.deprovisioned = append(p.deprovisioned, id)
	p.mu.Unlock()
	p.log.Info("deprovisioned", "installation", id, "had", had)
	return nil
}

// vars are the config vars of a new account: where to send pages, and
// the key to send them with.
func (pr provisioner) vars(id string) map[string]string {
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	prefix := pr.p.cfg.ConfigPrefix
	return map[string]string{prefix + "URL": pr.p.cfg.PublicURL + "/pages/" + id, prefix + "API_KEY": "pk_" + hex.EncodeToString(key)}
}

func (pr provisioner) client(ctx context.Context, tok *oauth2.Token) (*plugboard.Client, error) {
	return plugboard.NewClient(pr.p.cfg.PlugboardURL, plugboard.WithTokenSource(pr.p.oauth.TokenSource(ctx, tok)))
}

// Deprovisioned lists the installations Plugboard deprovisioned, in order.
func (p *Partner) Deprovisioned() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.deprovisioned...)
}
