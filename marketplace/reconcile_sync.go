package marketplace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/plugboard/plugboard/webhooks"
	"gorm.io/gorm"
)

type syncPage struct {
	Installations []string `json:"installations"`
	NextCursor    string   `json:"nextCursor"`
}

// partnerSync asks an app's sync URL which installations it knows and
// repairs the difference. Any failure records an error and changes nothing.
func (r *Reconciler) partnerSync(ctx context.Context, appID int64, run *Run) error {
	s := r.installs
	var app App
	if err := s.db.WithContext(ctx).First(&app, appID).Error; err != nil {
		return fmt.Errorf("loading app: %w", err)
	}
	known := map[string]bool{}
	cursor := ""
	for pageNo := 0; ; pageNo++ {
		if pageNo == 100 {
			return errors.New("the sync URL returned more than 100 pages")
		}
		u, err := url.Parse(app.SyncURL)
		if err != nil {
			return fmt.Errorf("bad sync URL: %w", err)
		}
		if cursor != "" {
			q := u.Query()
			q.Set("cursor", cursor)
			u.RawQuery = q.Encode()
		}
		signer, err := r.endpoints.Signer(ctx, app.ID)
		if err != nil {
			return fmt.Errorf("asking the sync URL: %w", err)
		}
		body, err := r.sender.SignedGet(ctx, signer, u.String(), 4<<20)
		if err != nil {
			return fmt.Errorf("asking the sync URL: %w", err)
		}
		var p syncPage
		if err := json.Unmarshal(body, &p); err != nil || p.Installations == nil {
			return errors.New(`the sync URL did not answer {"installations": [uuid, …], "nextCursor": "…"}`)
		}
		for _, id := range p.Installations {
			parsed, err := uuid.Parse(id)
			if err != nil {
				return fmt.Errorf("the sync URL listed %q, which is not an installation uuid", id)
			}
			known[parsed.String()] = true // canonical: lower case, as Postgres writes it
		}
		if p.NextCursor == "" || p.NextCursor == cursor {
			break
		}
		cursor = p.NextCursor
	}
	return s.publishTx(ctx, func(tx *gorm.DB) error {
		var ours []Installation
		if err := tx.Preload("App").Preload("Organization").Preload("Plan").Where("app_id = ?", app.ID).Find(&ours).Error; err != nil {
			return fmt.Errorf("listing installations: %w", err)
		}
		run.Examined = len(ours)
		byUUID := map[string]*Installation{}
		for i := range ours {
			inst := &ours[i]
			byUUID[inst.UUID] = inst
			if inst.SuspendedAt != nil {
				// Left alone (suspensions.go), but known: listed at the
				// partner or not, it is not reported unknown here.
				continue
			}
			if err := tx.Model(&Installation{}).Where("id = ?", inst.ID).Update("sync_checked_at", s.now()).Error; err != nil {
				return err
			}
			missingThere, goneHere := inst.Live() && !known[inst.UUID], !inst.Live() && known[inst.UUID]
			if missingThere || goneHere {
				reason := map[bool]string{true: ReasonMissingAtPartner, false: ReasonDeletedHere}[missingThere]
				recent, err := r.recentlyRepaired(tx, inst.UUID, reason)
				if err != nil {
					return err
				}
				if recent {
					// Told within a day; say so, and do not flood the partner.
					if err := r.found(tx, run, inst, reason, "already repaired within a day; waiting for the partner", false); err != nil {
						return err
					}
					continue
				}
			}
			switch {
			case missingThere:
				// Missing at the partner: installation.created again, with a fresh code.
				code, grant, err := s.newGrant(ctx, tx, inst.ID, grantOptions{})
				if err != nil {
					return err
				}
				if err := s.lifecycle(ctx, tx, inst, EventInstallationCreated, map[string]any{"code": code, "codeExpiresAt": grant.ExpiresAt, "resent": true}); err != nil {
					return err
				}
				if err := s.audit(tx, system, &inst.OrganizationID, "installation.resend_lifecycle", "installation", inst.UUID, app.Slug, JSON{"event": EventInstallationCreated, "reason": ReasonMissingAtPartner}); err != nil {
					return err
				}
				if err := r.found(tx, run, inst, ReasonMissingAtPartner, "resent installation.created with a fresh code", true); err != nil {
					return err
				}
			case goneHere:
				if err := s.lifecycle(ctx, tx, inst, EventInstallationDeleted, map[string]any{"reason": ReasonDeletedHere, "resent": true}); err != nil {
					return err
				}
				if err := s.audit(tx, system, &inst.OrganizationID, "installation.resend_lifecycle", "installation", inst.UUID, app.Slug, JSON{"event": EventInstallationDeleted, "reason": ReasonDeletedHere}); err != nil {
					return err
				}
				if err := r.found(tx, run, inst, ReasonDeletedHere, "sent installation.deleted again", true); err != nil {
					return err
				}
			}
		}
		for id := range known {
			if byUUID[id] != nil {
				continue
			}
			// Unknown here: tell the partner it does not exist.
			if recent, err := r.recentlyRepaired(tx, id, ReasonUnknownHere); err != nil || recent {
				if err != nil {
					return err
				}
				if err := r.found(tx, run, &Installation{AppID: app.ID, UUID: id}, ReasonUnknownHere, "already repaired within a day; waiting for the partner", false); err != nil {
					return err
				}
				continue
			}
			if _, err := s.outbox.Publish(ctx, tx, webhooks.NewEvent{OrganizationID: app.OrganizationID, Type: EventInstallationDeleted, AppID: app.ID,
				CreatedBy: "plugboard", Data: map[string]any{"installation": map[string]any{"uuid": id}, "reason": ReasonUnknownHere}}); err != nil {
				return err
			}
			if err := r.found(tx, run, &Installation{AppID: app.ID, UUID: id}, ReasonUnknownHere, "sent installation.deleted", true); err != nil {
				return err
			}
		}
		return nil
	})
}

// recentlyRepaired reports whether a run repaired this installation for this
// reason within the last day.
func (r *Reconciler) recentlyRepaired(tx *gorm.DB, installationUUID, reason string) (bool, error) {
	var n int64
	err := tx.Model(&Finding{}).Where("installation_uuid = ? AND reason = ? AND repaired AND created_at > ?",
		installationUUID, reason, r.now().Add(-24*time.Hour)).Count(&n).Error
	return n > 0, err
}
