package marketplace

import (
	"context"
	"fmt"

	"github.com/plugboard/plugboard/app/page"
)

// MembersPage is what an organization's members page shows: a page of
// members and what the actor may do to them.
type MembersPage struct {
	Org     *OrgAccess
	Members page.Page[Member]
	// CanManage: the actor adds, changes and removes members (admins and
	// owners); ManagesOwners: owners too (owners only).
	CanManage, ManagesOwners bool
	// Roles are the roles the actor may give.
	Roles []string
}

// MembersPage is the members page of organization orgRef, for its members.
func (s *Orgs) MembersPage(ctx context.Context, a Actor, orgRef string, r page.Request) (*MembersPage, error) {
	acc, err := s.access(ctx, s.db, a, orgRef, RoleMember)
	if err != nil {
		return nil, err
	}
	members, err := s.listMembers(ctx, acc.Org.ID, r)
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", acc.Org.Slug, err)
	}
	pg := &MembersPage{Org: acc, Members: members, CanManage: acc.IsAdmin(), ManagesOwners: acc.Role == RoleOwner,
		Roles: []string{RoleMember, RoleAdmin}}
	if pg.ManagesOwners {
		pg.Roles = append(pg.Roles, RoleOwner)
	}
	return pg, nil
}

// MemberPage is one member of an organization, for the pages that act on
// them (removing a member).
type MemberPage struct {
	Org    *OrgAccess
	Member *Member
}

// MemberPage is member memberID (its membership id) of organization
// orgRef, for the organization's members; others' members are not found.
func (s *Orgs) MemberPage(ctx context.Context, a Actor, orgRef, memberID string) (*MemberPage, error) {
	acc, err := s.access(ctx, s.db, a, orgRef, RoleMember)
	if err != nil {
		return nil, err
	}
	m, err := s.member(ctx, s.db, acc.Org.ID, memberID)
	if err != nil {
		return nil, err
	}
	return &MemberPage{Org: acc, Member: m}, nil
}

// AuditPage is what an organization's audit log page shows.
type AuditPage struct {
	Org     *OrgAccess
	Entries page.Page[AuditEntry]
}

// AuditPage is the audit log page of organization orgRef, newest first,
// for its admins; other members are refused, others find no organization.
func (s *Orgs) AuditPage(ctx context.Context, a Actor, orgRef string, aq AuditQuery, r page.Request) (*AuditPage, error) {
	acc, err := s.access(ctx, s.db, a, orgRef, RoleAdmin)
	if err != nil {
		return nil, err
	}
	entries, err := s.auditLog(ctx, acc.Org.ID, aq, r)
	if err != nil {
		return nil, fmt.Errorf("audit log of %s: %w", acc.Org.Slug, err)
	}
	return &AuditPage{Org: acc, Entries: entries}, nil
}
