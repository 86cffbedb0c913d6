package marketplace

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/plugboard/plugboard/app/fault"
	"gorm.io/gorm"
)

func (s *Apps) review(ctx context.Context, tx *gorm.DB, a Actor, ref, status string, reason *string, other AppFields, out **AppView) error {
	if err := requireUser(a); err != nil {
		return err
	}
	if !a.IsOperator() {
		if _, err := s.view(ctx, tx, a, ref, false); err != nil {
			return err
		}
		return fault.Forbidden(fault.OperatorOnly, "Only operators publish, reject or suspend apps; submit it with POST /api/0/apps/{app_slug}/publish-requests/.")
	}
	if other != (AppFields{}) {
		return fault.Field("status", "is changed on its own, without other fields")
	}
	v, err := s.view(ctx, tx, a, ref, true)
	if err != nil {
		return err
	}
	f := fault.Fields{}
	f.Check(status != StatusPublished && status != StatusRejected && status != StatusSuspended, "status", "must be published, rejected or suspended")
	why := ""
	if reason != nil {
		why = strings.TrimSpace(*reason)
	}
	f.Check(status == StatusRejected && why == "", "statusReason", "is required to reject an app")
	f.Check(status == StatusSuspended && why == "", "statusReason", "is required to suspend an app: every organization that installed it is shown it")
	f.Check(status == StatusSuspended && utf8.RuneCountInString(why) > maxSuspensionReason, "statusReason",
		fmt.Sprintf("must be at most %d characters", maxSuspensionReason))
	if err := f.Err(); err != nil {
		return err
	}
	if status == StatusSuspended || v.Status == StatusSuspended {
		// The kill switch, and lifting it (suspensions.go).
		if err := s.suspensions.appStatus(ctx, tx, a, v, status, why); err != nil {
			return err
		}
		*out = v
		return nil
	}
	if v.Kind != KindPublic {
		return fault.Conflict(fault.NotPublic, "Internal apps are never published.")
	}
	allowed := map[string][]string{StatusPublished: {StatusSubmitted}, StatusRejected: {StatusSubmitted, StatusPublished}}
	if !slices.Contains(allowed[status], v.Status) {
		return fault.Conflict(fault.InvalidTransition, fmt.Sprintf("A %s app cannot become %s.", v.Status, status))
	}
	was := v.Status
	v.Status, v.StatusReason, v.UpdatedAt = status, "", s.now()
	if reason != nil {
		v.StatusReason = strings.TrimSpace(*reason)
	}
	if status == StatusPublished {
		v.PublishedAt = ptr(s.now())
	}
	if err := tx.Omit("Organization", "Plans").Save(&v.App).Error; err != nil {
		return fmt.Errorf("saving review: %w", err)
	}
	*out = v
	if err := s.hostReview(ctx, tx, &v.App, was); err != nil { // host endpoints hear of it (host_events.go)
		return err
	}
	return s.audit(tx, a, &v.OrganizationID, "app."+map[string]string{StatusPublished: "publish", StatusRejected: "reject"}[status],
		"app", idStr(v.ID), v.Slug, JSON{"reason": v.StatusReason})
}

// SubmitApp asks operators to review a public app; it must be complete:
// a redirect URL, an overview, a scope and a plan (the partner overview's
// checklist lists the same steps).
func (s *Apps) SubmitApp(ctx context.Context, a Actor, ref string) (*AppView, error) {
	var out *AppView
	err := s.tx(ctx, func(tx *gorm.DB) error {
		v, err := s.manage(ctx, tx, a, ref)
		if err != nil {
			return err
		}
		if v.Kind != KindPublic {
			return fault.Conflict(fault.NotPublic, "Internal apps are installed in their organization and never reviewed.")
		}
		if v.Status != StatusDraft && v.Status != StatusRejected {
			return fault.Conflict(fault.InvalidTransition, fmt.Sprintf("The app is %s; only draft or rejected apps are submitted.", v.Status))
		}
		// Installing picks one of the app's plans, so a listed app without
		// one could not be installed the way the marketplace offers it.
		var plans int64
		if err := tx.WithContext(ctx).Model(&Plan{}).Where("app_id = ?", v.ID).Count(&plans).Error; err != nil {
			return fmt.Errorf("counting plans: %w", err)
		}
		f := fault.Fields{}
		f.Check(v.RedirectURL == "" && v.ProvisionURL == "", "redirectUrl", "is required before review: installs redirect there (or set provisionUrl)")
		f.Check(strings.TrimSpace(v.Overview) == "", "overview", "is required before review: the marketplace shows it")
		f.Check(len(v.Scopes) == 0, "scopes", "needs at least one scope before review")
		// Without a webhook URL an app's deliveries go to `plugboard listen`
		// alone: fine on a laptop, not for organizations that install it.
		f.Check(len(v.Events) > 0 && v.WebhookURL == "", "webhookUrl", "is required before review to receive events: without it deliveries go only to plugboard listen")
		f.Check(plans == 0, "plans", "needs at least one plan before review: organizations install a plan")
		if err := f.Err(); err != nil {
			return err
		}
		v.Status, v.StatusReason, v.SubmittedAt, v.UpdatedAt = StatusSubmitted, "", ptr(s.now()), s.now()
		if err := tx.Omit("Organization", "Plans").Save(&v.App).Error; err != nil {
			return fmt.Errorf("submitting app: %w", err)
		}
		out = v
		return s.audit(tx, a, &v.OrganizationID, "app.submit", "app", idStr(v.ID), v.Slug, nil)
	})
	return out, err
}
