package marketplace

import (
	"context"
	"fmt"

	"github.com/plugboard/plugboard/app/fault"
	"gorm.io/gorm"
)

// InstallationUpdate is a PUT on an installation.
type InstallationUpdate struct {
	Status     *string // "installed": the app verifies the install
	Plan       *string // an org admin changes plan
	ExternalID *string // the partner's account id, shown to the organization
	ConfigURL  *string // where the organization configures the app at the partner
}

// UpdateInstallation verifies an install or records the partner's account
// (the app's side), or changes plan (an organization admin).
func (s *Installs) UpdateInstallation(ctx context.Context, a Actor, id string, u InstallationUpdate) (*Installation, error) {
	var out *Installation
	var answer *provisionAnswer // the partner's yes to a plan change (provision.go)
	if u.Plan != nil {
		var err error
		if answer, err = s.provisioning.askPlanChange(ctx, a, id, *u.Plan); err != nil {
			return nil, err
		}
	}
	err := s.publishTx(ctx, func(tx *gorm.DB) error {
		inst, sd, err := s.installationFor(ctx, tx, a, id)
		if err != nil {
			return err
		}
		if !inst.Live() {
			return fault.Conflict(fault.InstallationNotLive, fmt.Sprintf("The installation is %s.", inst.Status))
		}
		appSide := u.Status != nil || u.ExternalID != nil || u.ConfigURL != nil
		if appSide && sd != sideApp {
			return fault.Forbidden(fault.AppOnly, "Only the app verifies its installation or sets externalId and configUrl, with the installation's token.")
		}
		if u.Plan != nil && sd != sideAdmin {
			if sd == sideMember {
				return fault.Forbidden(fault.InsufficientRole, "Changing plan needs the admin role in the organization.")
			}
			return fault.Forbidden(fault.AdminOnly, "Only the organization's admins change plan.")
		}
		f := fault.Fields{}
		f.Check(u.Status != nil && *u.Status != InstallInstalled, "status", `must be "installed"`)
		if u.ExternalID != nil {
			f.Check(len(*u.ExternalID) > 200, "externalId", "must be at most 200 characters")
		}
		if u.ConfigURL != nil {
			checkURL(f, "configUrl", *u.ConfigURL, false)
		}
		if err := f.Err(); err != nil {
			return err
		}
		changes := map[string]any{"updated_at": s.now()}
		action := "installation.update"
		provisioned := false
		if u.Status != nil && (inst.Status == InstallPending || inst.Status == InstallProvisioning) {
			provisioned = inst.Status == InstallProvisioning
			changes["status"], changes["verified_at"] = InstallInstalled, s.now()
			inst.Status, inst.VerifiedAt = InstallInstalled, ptr(s.now())
			action = "installation.verify"
			if provisioned {
				action = "installation.provisioned"
			}
		}
		if u.ExternalID != nil {
			changes["external_id"], inst.ExternalID = *u.ExternalID, *u.ExternalID
		}
		if u.ConfigURL != nil {
			changes["config_url"], inst.ConfigURL = *u.ConfigURL, *u.ConfigURL
		}
		var planChange map[string]any
		if u.Plan != nil {
			_, plan, err := s.installable(ctx, tx, a, *inst.Organization, idStr(inst.AppID), *u.Plan)
			if err != nil {
				return err
			}
			if plan != nil && (inst.PlanID == nil || *inst.PlanID != plan.ID) {
				planChange = map[string]any{"previousPlan": planData(inst.Plan)}
				changes["plan_id"], inst.PlanID, inst.Plan = plan.ID, &plan.ID, plan
				action = "installation.change_plan"
				if answer != nil {
					applyPlanAnswer(changes, inst, answer)
				}
			}
		}
		if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(changes).Error; err != nil {
			return fmt.Errorf("updating installation: %w", err)
		}
		inst.UpdatedAt = s.now()
		if planChange != nil && answer != nil {
			if _, err := s.applyVars(ctx, tx, Actor{App: inst.App}, inst, answer.Config); err != nil {
				return err
			}
		}
		if provisioned {
			// The partner finished an asynchronous provisioning: the app
			// hears installation.created as a synchronous one would.
			if err := s.lifecycle(ctx, tx, inst, EventInstallationCreated, map[string]any{"provisioned": true}); err != nil {
				return err
			}
		}
		if planChange != nil {
			if err := s.lifecycle(ctx, tx, inst, EventInstallationUpdated, planChange); err != nil {
				return err
			}
		}
		out = inst
		return s.audit(tx, a, &inst.OrganizationID, action, "installation", inst.UUID, inst.App.Slug, nil)
	})
	return out, err
}

// Uninstall deletes an installation: tokens are revoked at once and the app
// is told with installation.deleted. Org admins, the app, or its token.
func (s *Installs) Uninstall(ctx context.Context, a Actor, id string) error {
	return s.publishTx(ctx, func(tx *gorm.DB) error {
		inst, sd, err := s.installationFor(ctx, tx, a, id)
		if err != nil {
			return err
		}
		if sd == sideMember {
			return fault.Forbidden(fault.InsufficientRole, "Uninstalling needs the admin role in the organization.")
		}
		if !inst.Live() {
			return fault.Conflict(fault.InstallationNotLive, fmt.Sprintf("The installation is already %s.", inst.Status))
		}
		return s.endInstallation(ctx, tx, a, inst, InstallDeleted, "uninstalled")
	})
}

// endInstallation moves a live installation to deleted or failed, revokes
// its grants and tokens, and tells the app.
func (s *Installs) endInstallation(ctx context.Context, tx *gorm.DB, a Actor, inst *Installation, status, reason string) error {
	now := s.now()
	// An installation still provisioning was never announced to the app
	// (installation.created follows the partner's yes): it is not told
	// of the end either, only deprovisioned.
	announced := inst.Status != InstallProvisioning
	if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(map[string]any{
		"status": status, "status_reason": reason, "deleted_at": now, "updated_at": now}).Error; err != nil {
		return fmt.Errorf("ending installation: %w", err)
	}
	inst.Status, inst.StatusReason, inst.DeletedAt = status, reason, &now
	if err := s.tokens.revokeInstallationCredentials(tx, inst.ID); err != nil {
		return err
	}
	if err := tx.Model(&App{}).Where("id = ? AND installs_count > 0", inst.AppID).
		UpdateColumn("installs_count", gorm.Expr("installs_count - 1")).Error; err != nil {
		return fmt.Errorf("counting uninstall: %w", err)
	}
	if announced {
		if err := s.lifecycle(ctx, tx, inst, EventInstallationDeleted, map[string]any{"reason": reason}); err != nil {
			return err
		}
	}
	if inst.App != nil && inst.App.ProvisionURL != "" {
		if err := s.provisioning.deprovision(ctx, tx, inst, reason); err != nil {
			return err
		}
	}
	action := "installation.delete"
	if status == InstallFailed {
		action = "installation.fail"
	}
	return s.audit(tx, a, &inst.OrganizationID, action, "installation", inst.UUID, inst.App.Slug, JSON{"reason": reason})
}

// RequestGrant issues a fresh code for an installation whose code expired
// and resends installation.created with it; the app itself asks.
func (s *Installs) RequestGrant(ctx context.Context, a Actor, id string) (*Grant, string, error) {
	var g *Grant
	var code string
	err := s.publishTx(ctx, func(tx *gorm.DB) error {
		inst, sd, err := s.installationFor(ctx, tx, a, id)
		if err != nil {
			return err
		}
		if sd != sideApp {
			return fault.Forbidden(fault.AppOnly, "Only the app asks for a fresh code, with its own credentials.")
		}
		if !inst.Live() {
			return fault.Conflict(fault.InstallationNotLive, fmt.Sprintf("The installation is %s.", inst.Status))
		}
		code, g, err = s.newGrant(ctx, tx, inst.ID, grantOptions{})
		if err != nil {
			return err
		}
		if err := s.lifecycle(ctx, tx, inst, EventInstallationCreated, map[string]any{"code": code, "codeExpiresAt": g.ExpiresAt, "resent": true}); err != nil {
			return err
		}
		return s.audit(tx, a, &inst.OrganizationID, "installation.grant", "installation", inst.UUID, inst.App.Slug, nil)
	})
	return g, code, err
}
