package marketplace

// The reconciliation of provisioning: installations left provisioning past
// the deadline fail and are deprovisioned; a deprovision that ran out of
// retries marks its installation out of sync, is resent, and the
// installation is back in sync once one arrives.

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/webhooks"
)

// The provisioning jobs (see Jobs).
const (
	JobProvisionDeadline = "provision_deadline"
	JobDeprovision       = "deprovision_delivery"
)

func (r *Reconciler) provisionDeadline() time.Duration {
	if r.opts.ProvisionDeadline > 0 {
		return r.opts.ProvisionDeadline
	}
	return 12 * time.Hour
}

// provisioning fails installations whose partner answered 202 and never
// finished within the deadline (or whose answer never came back): grants
// and tokens revoked, and the partner sent the deprovision.
func (r *Reconciler) provisioning(ctx context.Context, run *Run) error {
	return r.failOverdue(ctx, run, InstallProvisioning, r.provisionDeadline(), ReasonProvisionTimeout,
		"failed the installation and sent the deprovision")
}

// deprovisions marks installations whose latest deprovision ran out of
// retries (or waits paused) out of sync, sends it once more each run (a
// single attempt: when the partner's endpoint works again, one arrives),
// and marks them in sync when it has.
func (r *Reconciler) deprovisions(ctx context.Context, run *Run) error {
	s := r.installs
	var resend []resendItem
	err := s.tx(ctx, func(tx *gorm.DB) error {
		type row struct {
			Installation
			DeliveryUUID   string
			DeliveryStatus string
		}
		var rows []row
		// The latest deprovision of each installation, then those that
		// failed or that an out-of-sync installation waits on.
		if err := tx.Raw(`
			SELECT * FROM (
				SELECT DISTINCT ON (i.id) i.*, d.uuid AS delivery_uuid, d.status AS delivery_status
				FROM installations i JOIN deliveries d ON d.installation_id = i.id
				WHERE d.event_type = ?
				ORDER BY i.id, d.id DESC) latest
			WHERE latest.suspended_at IS NULL
			  AND (latest.delivery_status IN ('failed', 'paused') OR (latest.sync_state = 'out_of_sync' AND latest.sync_reason = ?))`,
			EventInstallationDeprovision, ReasonDeprovisionFailed).Scan(&rows).Error; err != nil {
			return fmt.Errorf("finding failed deprovisions: %w", err)
		}
		run.Examined = len(rows)
		for _, x := range rows {
			inst := x.Installation
			switch x.DeliveryStatus {
			case webhooks.DeliverySucceeded:
				if err := r.markInSync(tx, &inst, "the deprovision was delivered"); err != nil {
					return err
				}
				if err := r.found(tx, run, &inst, ReasonDeprovisionFailed, "the resent deprovision arrived; back in sync", true); err != nil {
					return err
				}
			case webhooks.DeliveryFailed, webhooks.DeliveryPaused:
				if inst.SyncState != OutOfSync || inst.SyncReason != ReasonDeprovisionFailed {
					if err := r.markOutOfSync(tx, &inst, ReasonDeprovisionFailed); err != nil {
						return err
					}
					if err := r.found(tx, run, &inst, ReasonDeprovisionFailed, "the deprovision never arrived; marked out of sync", false); err != nil {
						return err
					}
				}
				resend = append(resend, resendItem{inst.AppID, x.DeliveryUUID})
				if err := s.audit(tx, system, &inst.OrganizationID, "installation.resend_deprovision", "installation", inst.UUID, "", nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return r.resendAll(ctx, resend, "a deprovision")
}
