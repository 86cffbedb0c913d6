package marketplace

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/webhooks"
)

// WebhookDirectory is the marketplace's answer to webhooks.Directory: who
// receives an event and where an app's endpoint is. It is built before the
// webhooks domain, which it does not use.
type WebhookDirectory struct{ *core }

// NewWebhookDirectory returns the directory on db.
func NewWebhookDirectory(db *gorm.DB, opts Options) (*WebhookDirectory, error) {
	c, err := newCore(db, nil, opts)
	if err != nil {
		return nil, err
	}
	return &WebhookDirectory{core: c}, nil
}

// Recipients implements webhooks.Directory: the live installations of orgID
// that receive eventType (their own events) and hold scope; for lifecycle events,
// the one installation they concern. An app without a webhook URL is
// marked ListenOnly: its deliveries go to `plugboard listen` sessions. A
// suspended installation's are marked Paused, but for the news of its
// suspension (suspensions.go).
func (s *WebhookDirectory) Recipients(ctx context.Context, tx *gorm.DB, orgID int64, eventType, scope string, installationID int64) ([]webhooks.Recipient, error) {
	var out []webhooks.Recipient
	q := s.recipients(ctx, tx, eventType, scope, installationID).Where("i.organization_id = ?", orgID)
	if err := q.Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("finding recipients: %w", err)
	}
	return out, nil
}

// RecipientsOf implements webhooks.ManyRecipients: Recipients for many
// organizations in one query (a batch of host events).
func (s *WebhookDirectory) RecipientsOf(ctx context.Context, tx *gorm.DB, orgIDs []int64, eventType, scope string) (map[int64][]webhooks.Recipient, error) {
	var rows []struct {
		webhooks.Recipient
		OrganizationID int64
	}
	q := s.recipients(ctx, tx, eventType, scope, 0).Select(recipientColumns(eventType)+", i.organization_id").
		Where("i.organization_id = ANY(?)", pgArray(orgIDs))
	if err := q.Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("finding recipients: %w", err)
	}
	out := make(map[int64][]webhooks.Recipient, len(orgIDs))
	for _, r := range rows {
		out[r.OrganizationID] = append(out[r.OrganizationID], r.Recipient)
	}
	return out, nil
}

// recipientColumns are what Recipients answers of each installation: a
// suspended installation's deliveries are Paused, but for the news of its
// suspension (suspensions.go).
func recipientColumns(eventType string) string {
	paused := "false"
	if !slices.Contains(suspensionEvents, eventType) {
		paused = "(i.suspended_at IS NOT NULL AND i.status IN ('pending', 'provisioning', 'installed'))"
	}
	return "i.app_id, i.id AS installation_id, i.uuid AS installation_uuid, a.webhook_url = '' AS listen_only, " + paused + " AS paused"
}

// recipients is the query of Recipients and RecipientsOf, less the
// organization: one place says who receives an event.
func (s *WebhookDirectory) recipients(ctx context.Context, tx *gorm.DB, eventType, scope string, installationID int64) *gorm.DB {
	q := tx.WithContext(ctx).Table("installations i").Select(recipientColumns(eventType)).Joins("JOIN apps a ON a.id = i.app_id")
	if installationID != 0 {
		return q.Where("i.id = ?", installationID)
	}
	conds, args := recipientConds(eventType, scope)
	return q.Where(conds, args...)
}

// recipientConds say which of an organization's installations (i)
// receive eventType holding scope, with ? placeholders. The
// installation's own events, not its app's: events an approved revision
// added reach it only once its organization accepts them
// (permission_requests.go; installations.events is 00016's).
//
// The status is written into the text, not passed: a plan made once for
// every call (the outbox's) can then use installations_org_installed_idx,
// whose predicate it is (migration 00023).
func recipientConds(eventType, scope string) (string, []any) {
	conds := "i.status = '" + InstallInstalled + "' AND i.events @> ?::jsonb"
	args := []any{fmt.Sprintf("[%q]", eventType)}
	if scope != "" {
		conds += " AND i.scopes @> ?::jsonb"
		args = append(args, fmt.Sprintf("[%q]", scope))
	}
	return conds, args
}

// RecipientsQuery implements webhooks.RecipientQueries: RecipientsOf's
// query as SQL for the outbox to run on its own connection ($1: the
// organizations' ids), the same conditions as recipients.
func (s *WebhookDirectory) RecipientsQuery(eventType, scope string) (string, []any) {
	conds, args := recipientConds(eventType, scope)
	var b strings.Builder
	b.WriteString("SELECT ")
	b.WriteString(strings.Replace(recipientColumns(eventType), "i.uuid AS installation_uuid", "i.uuid::text AS installation_uuid", 1))
	b.WriteString(", i.organization_id FROM installations i JOIN apps a ON a.id = i.app_id WHERE i.organization_id = ANY($1) AND ")
	n := 1
	for _, r := range conds {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String(), args
}

// Endpoint implements webhooks.Directory.
func (s *WebhookDirectory) Endpoint(ctx context.Context, appID int64) (*webhooks.Endpoint, error) {
	if id, ok := webhooks.IsHostKey(appID); ok {
		return s.hostEndpoint(ctx, id)
	}
	var app App
	if err := s.db.WithContext(ctx).First(&app, appID).Error; err != nil {
		return nil, dbErr(err, "app", "")
	}
	secrets, err := s.webhookSecrets(&app)
	if err != nil {
		return nil, err
	}
	return &webhooks.Endpoint{AppID: app.ID, Slug: app.Slug, URL: app.WebhookURL, Secrets: secrets}, nil
}

// EndpointChanged implements webhooks.Directory: the change goes in the
// owner organization's audit log, by the system.
func (s *WebhookDirectory) EndpointChanged(ctx context.Context, appID int64, status, reason string) {
	if id, ok := webhooks.IsHostKey(appID); ok {
		s.hostEndpointChanged(ctx, id, status, reason)
		return
	}
	var app App
	if err := s.db.WithContext(ctx).First(&app, appID).Error; err != nil {
		return
	}
	action := "app.webhook_" + status
	if err := s.audit(s.db.WithContext(ctx), Actor{}, &app.OrganizationID, action, "app", idStr(app.ID), app.Slug, JSON{"reason": reason}); err != nil {
		s.log.Error("recording endpoint change", "app", app.Slug, "err", err)
	}
}

// Held implements webhooks.Directory: app appID's suspended installations,
// whose deliveries no replay sends (suspensions.go). One that ended while
// suspended stays held: what it was not sent is never sent.
func (s *WebhookDirectory) Held(ctx context.Context, tx *gorm.DB, appID int64) ([]int64, error) {
	var ids []int64
	if err := tx.WithContext(ctx).Model(&Installation{}).Where("app_id = ? AND suspended_at IS NOT NULL", appID).
		Pluck("id", &ids).Error; err != nil {
		return nil, fmt.Errorf("finding suspended installations of app %d: %w", appID, err)
	}
	return ids, nil
}
