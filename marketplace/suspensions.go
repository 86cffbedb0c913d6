package marketplace

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
)

// Suspension, GitHub-style. An installation is suspended by an admin of
// its organization or by the app itself (POST …/suspensions/), and, with
// every installation of its app, by the operator's kill switch (PUT
// /api/0/apps/{app_slug}/ {status: "suspended"}). While suspended:
//
//   - every token of the installation is refused, 401 installation_suspended
//     (tokens.go), and /oauth/token issues none for it (oauth.go);
//   - its pending deliveries are paused and new ones stored paused
//     (webhooks' holds: Endpoints.HoldInstallation, Recipient.Paused,
//     WebhookDirectory.Held), except installation.suspended and
//     installation.unsuspended themselves, which go out;
//   - reconciliation leaves it alone (reconcile*.go).
//
// Lifting the suspension (DELETE …/suspensions/) replays what was paused,
// each delivery the same row, so with its original webhook-id. Who may lift
// it is whoever suspended it (installations.suspended_by), or an operator:
// see Suspension.LiftableBy. Lifting the kill switch lifts exactly the
// suspensions it made, never one an admin made.
//
// The columns are 00015_suspension.sql's; suspended_at stays set on an
// installation that ends while suspended, so what it was not sent is never
// sent (Held names it for good).

// The lifecycle events of suspension (00020_suspension_events.sql).
const (
	EventInstallationSuspended   = "installation.suspended"
	EventInstallationUnsuspended = "installation.unsuspended"
)

// suspensionEvents are the only events a suspended installation is sent.
var suspensionEvents = []string{EventInstallationSuspended, EventInstallationUnsuspended}

// Who suspended an installation, as the API says it (Suspension.By) and
// who may lift it (Suspension.LiftableBy).
const (
	SuspendedByOrganization  = "organization"   // an admin of the organization
	SuspendedByApp           = "app"            // the app itself
	SuspendedByOperator      = "operator"       // a Plugboard operator
	SuspendedByAppSuspension = "app_suspension" // the kill switch on the app
)

// The values of installations.suspended_by (00015_suspension.sql).
const (
	byUserPrefix     = "user:"
	byOperatorPrefix = "operator:"
	byApp            = "app"
	byAppSuspension  = "app_suspension"
)

// maxSuspensionReason bounds the reason a suspension gives.
const maxSuspensionReason = 500

// Suspensions suspend installations and lift their suspensions, and are
// the operator's kill switch on a whole app (called from Apps.review).
type Suspensions struct {
	*core
	installs  *Installs
	endpoints EndpointAdmin
}

// Suspension is an installation's suspension as its organization and its
// app see it.
type Suspension struct {
	At     time.Time
	By     string // SuspendedByOrganization, SuspendedByApp, SuspendedByOperator or SuspendedByAppSuspension
	Reason string
	// LiftableBy says who may lift it: "organization" (its admins), "app",
	// "operator". A kill-switch suspension is lifted with the app's.
	LiftableBy []string
	// ByUser is the admin who suspended it (name or email), on the
	// organization's own pages; "" elsewhere.
	ByUser string
}

// Suspension describes the installation's suspension; nil when it is not
// suspended.
func (i *Installation) Suspension() *Suspension {
	if i.SuspendedAt == nil {
		return nil
	}
	sp := &Suspension{At: *i.SuspendedAt, Reason: i.SuspensionReason, By: suspenderKind(i.SuspendedBy)}
	switch sp.By {
	case SuspendedByOrganization:
		sp.LiftableBy = []string{SuspendedByOrganization, SuspendedByOperator}
	case SuspendedByApp:
		sp.LiftableBy = []string{SuspendedByApp, SuspendedByOrganization, SuspendedByOperator}
	default: // an operator's, or the kill switch's (lifted with the app)
		sp.LiftableBy = []string{SuspendedByOperator}
	}
	return sp
}

// suspenderKind is what a suspended_by value is as Suspension.By.
func suspenderKind(by string) string {
	switch {
	case strings.HasPrefix(by, byUserPrefix):
		return SuspendedByOrganization
	case by == byApp:
		return SuspendedByApp
	case by == byAppSuspension:
		return SuspendedByAppSuspension
	}
	return SuspendedByOperator
}

// suspensionData is a suspension in the events that report it.
func suspensionData(sp *Suspension) map[string]any {
	return map[string]any{"by": sp.By, "reason": sp.Reason, "dateSuspended": sp.At}
}

// checkReason trims a suspension's reason and checks its length; field is
// the API's name for it.
func checkReason(f fault.Fields, field string, reason *string) string {
	if reason == nil {
		return ""
	}
	r := strings.TrimSpace(*reason)
	f.Check(utf8.RuneCountInString(r) > maxSuspensionReason, field, fmt.Sprintf("must be at most %d characters", maxSuspensionReason))
	return r
}

// Suspend suspends installation id: an admin of its organization, or the
// app itself (its credentials, an app JWT, or the installation's token).
// The installation's tokens are refused from the commit on, its pending
// deliveries pause, and the app is sent installation.suspended. It reports
// whether this call suspended it: suspending again as the same suspender
// changes nothing, and an admin takes over a suspension by the app or the
// kill switch (then only the organization lifts it).
func (s *Suspensions) Suspend(ctx context.Context, a Actor, id string, reason *string) (*Installation, bool, error) {
	var out *Installation
	var created bool
	err := s.publishTx(ctx, func(tx *gorm.DB) error {
		inst, sd, err := s.installs.installationFor(ctx, tx, a, id)
		if err != nil {
			return err
		}
		if sd == sideMember {
			return fault.Forbidden(fault.InsufficientRole, "Suspending an app needs the admin role in the organization.")
		}
		if !inst.Live() {
			return fault.Conflict(fault.InstallationNotLive, fmt.Sprintf("The installation is %s.", inst.Status))
		}
		f := fault.Fields{}
		why := checkReason(f, "reason", reason)
		if err := f.Err(); err != nil {
			return err
		}
		by := byApp
		if sd == sideAdmin {
			by = byUserPrefix + idStr(a.User.ID)
		}
		out = inst
		if inst.SuspendedAt == nil {
			created = true
			return s.hold(ctx, tx, a, inst, by, why)
		}
		cur := inst.Suspension()
		switch {
		case cur.By == suspenderKind(by):
			return nil // suspended already, by this side: nothing changes
		case sd == sideAdmin && (inst.SuspendedBy == byApp || inst.SuspendedBy == byAppSuspension):
			// The organization makes the suspension its own: lifting the
			// app's (or the app lifting its own) no longer lifts it.
			if why == "" {
				why = inst.SuspensionReason
			}
			if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(map[string]any{
				"suspended_by": by, "suspension_reason": why, "updated_at": s.now()}).Error; err != nil {
				return fmt.Errorf("taking over the suspension of %s: %w", inst.UUID, err)
			}
			inst.SuspendedBy, inst.SuspensionReason, inst.UpdatedAt = by, why, s.now()
			return s.audit(tx, a, &inst.OrganizationID, "installation.suspend", "installation", inst.UUID, inst.App.Slug,
				JSON{"by": SuspendedByOrganization, "reason": why, "tookOverFrom": cur.By})
		}
		return fault.Conflict(fault.AlreadySuspended, alreadySuspended(cur))
	})
	return out, created, err
}

func alreadySuspended(cur *Suspension) string {
	switch cur.By {
	case SuspendedByOrganization:
		return "An admin of the organization suspended the installation; only the organization's admins (or an operator) lift it."
	case SuspendedByAppSuspension:
		return "Plugboard's operators suspended the app, and so this installation, until they lift the app's suspension."
	case SuspendedByApp:
		return "The app suspended the installation already."
	}
	return "Plugboard's operators suspended the installation; only an operator lifts it."
}

// Unsuspend lifts installation id's suspension: whoever suspended it (see
// Suspension.LiftableBy), or an operator. Its tokens work again, the app
// is sent installation.unsuspended, and what was paused is replayed with
// its original webhook-ids. An installation that is not suspended is left
// as it is.
func (s *Suspensions) Unsuspend(ctx context.Context, a Actor, id string) error {
	return s.publishTx(ctx, func(tx *gorm.DB) error {
		inst, err := s.installs.loadInstallation(ctx, tx, id, true)
		if err != nil {
			return err
		}
		sd, err := s.installs.sideOf(ctx, tx, a, inst)
		if err != nil {
			return err
		}
		op := a.IsOperator() // operators lift any suspension, of any organization
		switch {
		case sd == sideNone && !op:
			return fault.NotFound("installation")
		case sd == sideMember && !op:
			return fault.Forbidden(fault.InsufficientRole, "Lifting a suspension needs the admin role in the organization.")
		case inst.SuspendedAt == nil:
			return nil // nothing to lift
		case !inst.Live():
			return fault.Conflict(fault.InstallationNotLive, fmt.Sprintf("The installation is %s.", inst.Status))
		}
		lifter := SuspendedByOperator
		switch {
		case op:
		case sd == sideAdmin:
			lifter = SuspendedByOrganization
		case sd == sideApp:
			lifter = SuspendedByApp
		}
		cur := inst.Suspension()
		if cur.By == SuspendedByAppSuspension && inst.App.Status == StatusSuspended {
			return fault.Conflict(fault.AppSuspended, fmt.Sprintf(
				"Plugboard's operators suspended %s (%s); its installations are lifted with it: an operator sets the app's status back (PUT /api/0/apps/%s/ {\"status\": \"published\"}).",
				inst.App.Name, inst.App.StatusReason, inst.App.Slug))
		}
		if !op && cur.By != SuspendedByAppSuspension && !slices.Contains(cur.LiftableBy, lifter) {
			return fault.Forbidden(fault.NotSuspender, notSuspender(cur))
		}
		return s.release(ctx, tx, a, inst, lifter)
	})
}

func notSuspender(cur *Suspension) string {
	if cur.By == SuspendedByOrganization {
		return "An admin of the organization suspended the installation: only the organization's admins, or Plugboard's operators, lift it."
	}
	return "Plugboard's operators suspended the installation: only an operator lifts it."
}

// hold suspends inst in tx, by by (a suspended_by value) for reason: the
// columns, its pending deliveries paused, installation.suspended to the
// app (and to host endpoints), and the audit entry.
func (s *Suspensions) hold(ctx context.Context, tx *gorm.DB, a Actor, inst *Installation, by, reason string) error {
	now := s.now()
	if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(map[string]any{
		"suspended_at": now, "suspended_by": by, "suspension_reason": reason, "updated_at": now}).Error; err != nil {
		return fmt.Errorf("suspending installation %s: %w", inst.UUID, err)
	}
	inst.SuspendedAt, inst.SuspendedBy, inst.SuspensionReason, inst.UpdatedAt = &now, by, reason, now
	paused, err := s.endpoints.HoldInstallation(ctx, tx, inst.ID)
	if err != nil {
		return err
	}
	// After the hold: this one delivery is the news of the suspension,
	// and goes out (WebhookDirectory.Recipients does not pause it).
	sp := inst.Suspension()
	if err := s.installs.lifecycle(ctx, tx, inst, EventInstallationSuspended, map[string]any{"suspension": suspensionData(sp)}); err != nil {
		return err
	}
	return s.audit(tx, a, &inst.OrganizationID, "installation.suspend", "installation", inst.UUID, inst.App.Slug,
		JSON{"by": sp.By, "reason": reason, "paused": paused})
}

// release lifts inst's suspension in tx, by lifter (a SuspendedBy value):
// the columns cleared, installation.unsuspended to the app (and to host
// endpoints), what was paused replayed after the commit, and the audit
// entry.
func (s *Suspensions) release(ctx context.Context, tx *gorm.DB, a Actor, inst *Installation, lifter string) error {
	lifted := inst.Suspension()
	if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Updates(map[string]any{
		"suspended_at": nil, "suspended_by": "", "suspension_reason": "", "updated_at": s.now()}).Error; err != nil {
		return fmt.Errorf("lifting the suspension of %s: %w", inst.UUID, err)
	}
	inst.SuspendedAt, inst.SuspendedBy, inst.SuspensionReason, inst.UpdatedAt = nil, "", "", s.now()
	if err := s.installs.lifecycle(ctx, tx, inst, EventInstallationUnsuspended,
		map[string]any{"suspension": suspensionData(lifted), "liftedBy": lifter}); err != nil {
		return err
	}
	replayed, err := s.endpoints.ReleaseInstallation(ctx, tx, inst.AppID, inst.ID)
	if err != nil {
		return err
	}
	return s.audit(tx, a, &inst.OrganizationID, "installation.unsuspend", "installation", inst.UUID, inst.App.Slug,
		JSON{"by": lifted.By, "reason": lifted.Reason, "liftedBy": lifter, "replayed": replayed})
}

// appStatus is the kill switch, inside Apps.review's transaction on the
// locked app v, for an operator: status "suspended" suspends the app and
// every live installation of it not suspended already; "published" on a
// suspended app lifts it, restoring the status it had and lifting exactly
// the suspensions it made.
func (s *Suspensions) appStatus(ctx context.Context, tx *gorm.DB, a Actor, v *AppView, status, reason string) error {
	switch {
	case status == StatusSuspended && v.Status == StatusSuspended:
		return fault.Conflict(fault.InvalidTransition, "The app is suspended already.")
	case status == StatusSuspended:
		return s.suspendApp(ctx, tx, a, v, reason)
	case status == StatusPublished:
		return s.liftApp(ctx, tx, a, v, reason)
	}
	return fault.Conflict(fault.InvalidTransition, fmt.Sprintf(
		"A suspended app cannot become %s: lift its suspension first (status published restores what it was).", status))
}

func (s *Suspensions) suspendApp(ctx context.Context, tx *gorm.DB, a Actor, v *AppView, reason string) error {
	was := v.Status
	v.SuspendedFrom, v.Status, v.StatusReason, v.UpdatedAt = was, StatusSuspended, reason, s.now()
	if err := tx.Omit("Organization", "Plans").Save(&v.App).Error; err != nil {
		return fmt.Errorf("suspending app %s: %w", v.Slug, err)
	}
	var insts []Installation
	if err := tx.WithContext(ctx).Preload("Organization").Preload("Plan").Clauses(lockForUpdate).
		Where("app_id = ? AND status IN ? AND suspended_at IS NULL", v.ID, LiveStatuses).Order("id").Find(&insts).Error; err != nil {
		return fmt.Errorf("finding installations of %s: %w", v.Slug, err)
	}
	for i := range insts {
		inst := &insts[i]
		inst.App = &v.App
		if err := s.hold(ctx, tx, a, inst, byAppSuspension, reason); err != nil {
			return err
		}
	}
	if was == StatusPublished { // it leaves the marketplace: host endpoints hear it (host_events.go)
		if err := s.hostAppEvent(ctx, tx, &v.App, EventAppUnpublished, "suspended"); err != nil {
			return err
		}
	}
	return s.audit(tx, a, &v.OrganizationID, "app.suspend", "app", idStr(v.ID), v.Slug,
		JSON{"reason": reason, "was": was, "installations": len(insts)})
}

func (s *Suspensions) liftApp(ctx context.Context, tx *gorm.DB, a Actor, v *AppView, reason string) error {
	was := v.SuspendedFrom
	if was == "" {
		was = StatusPublished
	}
	lifted := v.StatusReason
	v.Status, v.SuspendedFrom, v.StatusReason, v.UpdatedAt = was, "", reason, s.now()
	if was == StatusPublished && v.PublishedAt == nil {
		v.PublishedAt = ptr(s.now())
	}
	if err := tx.Omit("Organization", "Plans").Save(&v.App).Error; err != nil {
		return fmt.Errorf("lifting the suspension of app %s: %w", v.Slug, err)
	}
	// Exactly the installations the kill switch suspended: one an admin
	// suspended (before, or by taking it over since) stays suspended.
	var insts []Installation
	if err := tx.WithContext(ctx).Preload("Organization").Preload("Plan").Clauses(lockForUpdate).
		Where("app_id = ? AND status IN ? AND suspended_by = ?", v.ID, LiveStatuses, byAppSuspension).Order("id").Find(&insts).Error; err != nil {
		return fmt.Errorf("finding installations of %s: %w", v.Slug, err)
	}
	for i := range insts {
		inst := &insts[i]
		inst.App = &v.App
		if err := s.release(ctx, tx, a, inst, SuspendedByOperator); err != nil {
			return err
		}
	}
	if was == StatusPublished {
		if err := s.hostAppEvent(ctx, tx, &v.App, EventAppPublished, ""); err != nil {
			return err
		}
	}
	return s.audit(tx, a, &v.OrganizationID, "app.unsuspend", "app", idStr(v.ID), v.Slug,
		JSON{"reason": lifted, "restored": was, "installations": len(insts)})
}

// suspensionFor is inst's suspension for its organization's page: with
// the admin who suspended it, by name.
func suspensionFor(ctx context.Context, db *gorm.DB, inst *Installation) (*Suspension, error) {
	sp := inst.Suspension()
	if sp == nil || sp.By != SuspendedByOrganization {
		return sp, nil
	}
	uid, err := strconv.ParseInt(strings.TrimPrefix(inst.SuspendedBy, byUserPrefix), 10, 64)
	if err != nil {
		return sp, nil
	}
	var u User
	err = db.WithContext(ctx).Select("id", "name", "email").Take(&u, uid).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return sp, nil // the admin's account is gone; the organization still lifts it
	}
	if err != nil {
		return nil, fmt.Errorf("finding who suspended %s: %w", inst.UUID, err)
	}
	sp.ByUser = u.Email
	if u.Name != "" {
		sp.ByUser = u.Name + " (" + u.Email + ")"
	}
	return sp, nil
}

// errSuspended refuses a token of a suspended installation.
func errSuspended(inst *Installation) error {
	msg := "The installation is suspended: its tokens are refused until the suspension is lifted."
	if inst.SuspensionReason != "" {
		msg = fmt.Sprintf("The installation is suspended (%s): its tokens are refused until the suspension is lifted.", inst.SuspensionReason)
	}
	return fault.Unauthorized(fault.InstallationSuspended, msg)
}

// suspendedGrant is /oauth/token's refusal for a suspended installation.
const suspendedGrant = "The installation is suspended: no tokens are issued for it until the suspension is lifted."
