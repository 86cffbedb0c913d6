package marketplace

import (
	"context"
	"fmt"

	"github.com/plugboard/plugboard/app/page"
)

// AuditLog lists an organization's audit entries, newest first; admins.
func (s *Orgs) AuditLog(ctx context.Context, a Actor, ref string, aq AuditQuery, r page.Request) (page.Page[AuditEntry], error) {
	acc, err := s.access(ctx, s.db, a, ref, RoleAdmin)
	if err != nil {
		return page.Page[AuditEntry]{}, err
	}
	q := s.db.WithContext(ctx).Where("organization_id = ?", acc.Org.ID)
	if aq.Action != "" {
		q = q.Where("action = ?", aq.Action)
	}
	var rows []AuditEntry
	if err := page.Query(q, "id", page.Sort{Column: "id", Desc: true}, r).Find(&rows).Error; err != nil {
		return page.Page[AuditEntry]{}, fmt.Errorf("listing audit log: %w", err)
	}
	return page.Finish(rows, r, func(e AuditEntry) (string, int64) { return "", e.ID }), nil
}

// AuditQuery filters the audit log.
type AuditQuery struct {
	Action string
}
