package marketplace

import (
	"context"
	"fmt"
	"strconv"

	"github.com/plugboard/plugboard/app/page"
)

// AuditLog lists an organization's audit entries, newest first; admins.
func (s *Orgs) AuditLog(ctx context.Context, a Actor, ref string, aq AuditQuery, r page.Request) (page.Page[AuditEntry], error) {
	acc, err := s.access(ctx, s.db, a, ref, RoleAdmin)
	if err != nil {
		return page.Page[AuditEntry]{}, err
	}
	return s.auditLog(ctx, acc.Org.ID, aq, r)
}

// auditLog lists organization orgID's audit entries, newest first.
func (s *Orgs) auditLog(ctx context.Context, orgID int64, aq AuditQuery, r page.Request) (page.Page[AuditEntry], error) {
	q := s.db.WithContext(ctx).Where("organization_id = ?", orgID)
	if aq.Action != "" {
		q = q.Where("action = ?", aq.Action)
	}
	var rows []AuditEntry
	order := page.Sort{Column: "id", Desc: true}
	if err := page.Query(q, "id", order, r).Find(&rows).Error; err != nil {
		return page.Page[AuditEntry]{}, fmt.Errorf("listing audit log: %w", err)
	}
	if err := s.markOperators(ctx, rows); err != nil {
		return page.Page[AuditEntry]{}, err
	}
	return page.Finish(rows, r, order, func(e AuditEntry) (string, int64) { return "", e.ID }), nil
}

// AuditQuery filters the audit log.
type AuditQuery struct {
	Action string
}

// markOperators sets ActorIsOperator on the entries operators made, so the
// log tells a reviewer's action from a member's.
func (s *Orgs) markOperators(ctx context.Context, rows []AuditEntry) error {
	var ids []int64
	for _, e := range rows {
		if e.ActorType != "user" {
			continue
		}
		if id, err := strconv.ParseInt(e.ActorID, 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var ops []int64
	if err := s.db.WithContext(ctx).Model(&User{}).Where("id IN ? AND is_operator", ids).Pluck("id", &ops).Error; err != nil {
		return fmt.Errorf("finding operators in the audit log: %w", err)
	}
	isOp := make(map[string]bool, len(ops))
	for _, id := range ops {
		isOp[idStr(id)] = true
	}
	for i := range rows {
		rows[i].ActorIsOperator = rows[i].ActorType == "user" && isOp[rows[i].ActorID]
	}
	return nil
}
