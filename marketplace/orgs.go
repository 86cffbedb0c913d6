package marketplace

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
)

// NewOrganization is the input of CreateOrganization.
type NewOrganization struct {
	Name string
	Slug string
}

// CreateOrganization makes an organization with the actor as its owner.
func (s *Orgs) CreateOrganization(ctx context.Context, a Actor, n NewOrganization) (*OrgAccess, error) {
	if err := requireUser(a); err != nil {
		return nil, err
	}
	f := fault.Fields{}
	n.Name = strings.TrimSpace(n.Name)
	f.Check(n.Name == "", "name", "is required")
	f.Check(utf8.RuneCountInString(n.Name) > 100, "name", "must be at most 100 characters")
	if n.Slug == "" {
		n.Slug = Slugify(n.Name)
		if n.Name != "" {
			checkSlug(f, "name", n.Slug)
		}
	} else {
		checkSlug(f, "slug", n.Slug)
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	org := Organization{Name: n.Name, Slug: n.Slug, CreatedAt: s.now(), UpdatedAt: s.now()}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(&org).Error; err != nil {
			return dbErr(err, "organization", "slug")
		}
		m := Membership{OrganizationID: org.ID, UserID: a.User.ID, Role: RoleOwner, CreatedAt: s.now()}
		if err := tx.Create(&m).Error; err != nil {
			return fmt.Errorf("adding owner: %w", err)
		}
		return s.audit(tx, a, &org.ID, "organization.create", "organization", idStr(org.ID), org.Slug, nil)
	})
	if err != nil {
		return nil, err
	}
	return &OrgAccess{Org: org, Role: RoleOwner}, nil
}

// ListOrganizations returns the organizations the actor belongs to.
func (s *Orgs) ListOrganizations(ctx context.Context, a Actor, r page.Request) (page.Page[OrgAccess], error) {
	if err := requireUser(a); err != nil {
		return page.Page[OrgAccess]{}, err
	}
	type row struct {
		Organization
		Role string
	}
	var rows []row
	q := s.db.WithContext(ctx).Table("organizations").
		Select("organizations.*, memberships.role").
		Joins("JOIN memberships ON memberships.organization_id = organizations.id AND memberships.user_id = ?", a.User.ID)
	order := page.Sort{Column: "organizations.slug"}
	if err := page.Query(q, "organizations.id", order, r).Scan(&rows).Error; err != nil {
		return page.Page[OrgAccess]{}, fmt.Errorf("listing organizations: %w", err)
	}
	p := page.Finish(rows, r, order, func(r row) (string, int64) { return r.Slug, r.ID })
	return page.Map(p, func(r row) OrgAccess { return OrgAccess{Org: r.Organization, Role: r.Role} }), nil
}

// GetOrganization returns one organization the actor belongs to.
func (s *Orgs) GetOrganization(ctx context.Context, a Actor, ref string) (*OrgAccess, error) {
	return s.platformAccess(ctx, s.db, a, ref, "org:read", RoleMember)
}

// OrganizationUpdate holds the fields PUT may change.
type OrganizationUpdate struct {
	Name *string
	Slug *string
}

// UpdateOrganization changes name or slug; admins and owners, and
// installation tokens with org:write.
func (s *Orgs) UpdateOrganization(ctx context.Context, a Actor, ref string, u OrganizationUpdate) (*OrgAccess, error) {
	var out *OrgAccess
	err := s.tx(ctx, func(tx *gorm.DB) error {
		acc, err := s.platformAccess(ctx, tx, a, ref, "org:write", RoleAdmin)
		if err != nil {
			return err
		}
		f := fault.Fields{}
		changes := map[string]any{"updated_at": s.now()}
		if u.Name != nil {
			name := strings.TrimSpace(*u.Name)
			f.Check(name == "" || utf8.RuneCountInString(name) > 100, "name", "must be 1 to 100 characters")
			changes["name"], acc.Org.Name = name, name
		}
		if u.Slug != nil {
			checkSlug(f, "slug", *u.Slug)
			changes["slug"], acc.Org.Slug = *u.Slug, *u.Slug
		}
		if err := f.Err(); err != nil {
			return err
		}
		if err := tx.Model(&Organization{}).Where("id = ?", acc.Org.ID).Updates(changes).Error; err != nil {
			return dbErr(err, "organization", "slug")
		}
		out = acc
		delete(changes, "updated_at")
		return s.audit(tx, a, &acc.Org.ID, "organization.update", "organization", idStr(acc.Org.ID), acc.Org.Slug, JSON(changes))
	})
	return out, err
}

// DeleteOrganization removes an organization with its apps; owners only.
func (s *Orgs) DeleteOrganization(ctx context.Context, a Actor, ref string) error {
	return s.publishTx(ctx, func(tx *gorm.DB) error {
		acc, err := s.access(ctx, tx, a, ref, RoleOwner)
		if err != nil {
			return err
		}
		// Apps this organization publishes must not vanish from under the
		// organizations that installed them.
		var elsewhere int64
		if err := tx.Model(&Installation{}).Joins("JOIN apps ON apps.id = installations.app_id").
			Where("apps.organization_id = ? AND installations.organization_id <> ? AND installations.status IN ?", acc.Org.ID, acc.Org.ID,
				LiveStatuses).Count(&elsewhere).Error; err != nil {
			return fmt.Errorf("counting installations of the organization's apps: %w", err)
		}
		if elsewhere > 0 {
			return fault.Conflict(fault.HasInstallations, fmt.Sprintf("The organization's apps are installed in %d other organizations; they must uninstall them first.", elsewhere))
		}
		// Every app installed here is uninstalled, so its partner is told.
		var live []Installation
		if err := tx.Preload("App").Preload("Organization").Preload("Plan").Clauses(lockForUpdate).
			Where("organization_id = ? AND status IN ?", acc.Org.ID, LiveStatuses).Find(&live).Error; err != nil {
			return fmt.Errorf("listing installations: %w", err)
		}
		for i := range live {
			if err := s.installs.endInstallation(ctx, tx, a, &live[i], InstallDeleted, "organization_deleted"); err != nil {
				return err
			}
		}
		if err := tx.Delete(&Organization{}, acc.Org.ID).Error; err != nil {
			return fmt.Errorf("deleting organization: %w", err)
		}
		return s.audit(tx, a, &acc.Org.ID, "organization.delete", "organization", idStr(acc.Org.ID), acc.Org.Slug, nil)
	})
}

// ListMembers returns the organization's members; any member may read.
func (s *Orgs) ListMembers(ctx context.Context, a Actor, ref string, r page.Request) (page.Page[Member], error) {
	acc, err := s.platformAccess(ctx, s.db, a, ref, "member:read", RoleMember)
	if err != nil {
		return page.Page[Member]{}, err
	}
	return s.listMembers(ctx, acc.Org.ID, r)
}

func (s *Orgs) listMembers(ctx context.Context, orgID int64, r page.Request) (page.Page[Member], error) {
	var rows []Member
	q := s.db.WithContext(ctx).Preload("User").Where("organization_id = ?", orgID)
	order := page.Sort{Column: "id"}
	if err := page.Query(q, "id", order, r).Find(&rows).Error; err != nil {
		return page.Page[Member]{}, fmt.Errorf("listing members: %w", err)
	}
	return page.Finish(rows, r, order, func(m Member) (string, int64) { return "", m.ID }), nil
}

func checkRole(f fault.Fields, role string) {
	f.Check(roleRank[role] == 0, "role", "must be one of owner, admin, member")
}

// AddMember gives an existing user a role; admins (and installation tokens
// with member:write) add members and admins, only owners add owners.
func (s *Orgs) AddMember(ctx context.Context, a Actor, ref, email, role string) (*Member, error) {
	var out Member
	err := s.tx(ctx, func(tx *gorm.DB) error {
		acc, err := s.platformAccess(ctx, tx, a, ref, "member:write", RoleAdmin)
		if err != nil {
			return err
		}
		f := fault.Fields{}
		f.Check(strings.TrimSpace(email) == "", "email", "is required")
		if role == "" {
			role = RoleMember
		}
		checkRole(f, role)
		if err := f.Err(); err != nil {
			return err
		}
		if role == RoleOwner && acc.Role != RoleOwner {
			return fault.Forbidden(fault.InsufficientRole, "Only owners can add owners.")
		}
		var u User
		if err := tx.Where("lower(email) = lower(?)", strings.TrimSpace(email)).First(&u).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return fault.Field("email", "no user has this email; they must sign up first")
			}
			return fmt.Errorf("finding user: %w", err)
		}
		out = Member{OrganizationID: acc.Org.ID, UserID: u.ID, Role: role, CreatedAt: s.now(), User: &u}
		if err := tx.Omit("User").Create(&out).Error; err != nil {
			if e := dbErr(err, "member", "email"); errors.Is(e, fault.ErrConflict) {
				return &fault.Error{Kind: fault.KindConflict, Code: fault.AlreadyMember, Message: "That user is already a member.",
					Fields: map[string]string{"email": "is already a member"}}
			}
			return fmt.Errorf("adding member: %w", err)
		}
		return s.audit(tx, a, &acc.Org.ID, "member.add", "member", idStr(out.ID), u.Email, JSON{"role": role})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func (s *Orgs) member(ctx context.Context, tx *gorm.DB, orgID int64, memberID string) (*Member, error) {
	id, err := strconv.ParseInt(memberID, 10, 64)
	if err != nil {
		return nil, fault.NotFound("member")
	}
	var m Member
	if err := tx.WithContext(ctx).Preload("User").Where("organization_id = ? AND id = ?", orgID, id).First(&m).Error; err != nil {
		return nil, dbErr(err, "member", "")
	}
	return &m, nil
}

// ownersLeft counts owners other than membership id, locking them.
func ownersLeft(tx *gorm.DB, orgID, exceptID int64) (int64, error) {
	var ids []int64
	err := tx.Model(&Membership{}).Clauses(lockForUpdate).
		Where("organization_id = ? AND role = ? AND id <> ?", orgID, RoleOwner, exceptID).Pluck("id", &ids).Error
	return int64(len(ids)), err
}

// UpdateMember changes a member's role; admins and installation tokens
// with member:write. Only owners grant or take away the owner role, and
// the last owner stays an owner.
func (s *Orgs) UpdateMember(ctx context.Context, a Actor, ref, memberID, role string) (*Member, error) {
	var out *Member
	err := s.tx(ctx, func(tx *gorm.DB) error {
		acc, err := s.platformAccess(ctx, tx, a, ref, "member:write", RoleAdmin)
		if err != nil {
			return err
		}
		m, err := s.member(ctx, tx, acc.Org.ID, memberID)
		if err != nil {
			return err
		}
		f := fault.Fields{}
		checkRole(f, role)
		if err := f.Err(); err != nil {
			return err
		}
		if (role == RoleOwner || m.Role == RoleOwner) && acc.Role != RoleOwner {
			return fault.Forbidden(fault.InsufficientRole, "Only owners can grant or remove the owner role.")
		}
		if m.Role == RoleOwner && role != RoleOwner {
			n, err := ownersLeft(tx, acc.Org.ID, m.ID)
			if err != nil {
				return fmt.Errorf("counting owners: %w", err)
			}
			if n == 0 {
				return fault.Conflict(fault.LastOwner, "The organization's last owner cannot be demoted; make someone else owner first.")
			}
		}
		old := m.Role
		if err := tx.Model(&Membership{}).Where("id = ?", m.ID).Update("role", role).Error; err != nil {
			return fmt.Errorf("updating member: %w", err)
		}
		m.Role, out = role, m
		return s.audit(tx, a, &acc.Org.ID, "member.update", "member", idStr(m.ID), m.User.Email, JSON{"role": role, "previousRole": old})
	})
	return out, err
}

// RemoveMember removes a member; admins (and installation tokens with
// member:write) remove others, anyone may leave, and the last owner cannot.
func (s *Orgs) RemoveMember(ctx context.Context, a Actor, ref, memberID string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		acc, err := s.platformAccess(ctx, tx, a, ref, "member:write", RoleMember)
		if err != nil {
			return err
		}
		m, err := s.member(ctx, tx, acc.Org.ID, memberID)
		if err != nil {
			return err
		}
		self := a.User != nil && m.UserID == a.User.ID
		if !self && a.User != nil && roleRank[acc.Role] < roleRank[RoleAdmin] {
			return fault.Forbidden(fault.InsufficientRole, "Only admins and owners remove other members.")
		}
		if !self && m.Role == RoleOwner && acc.Role != RoleOwner {
			return fault.Forbidden(fault.InsufficientRole, "Only owners remove owners.")
		}
		if m.Role == RoleOwner {
			n, err := ownersLeft(tx, acc.Org.ID, m.ID)
			if err != nil {
				return fmt.Errorf("counting owners: %w", err)
			}
			if n == 0 {
				return fault.Conflict(fault.LastOwner, "The organization's last owner cannot leave; make someone else owner or delete the organization.")
			}
		}
		if err := tx.Delete(&Membership{}, m.ID).Error; err != nil {
			return fmt.Errorf("removing member: %w", err)
		}
		return s.audit(tx, a, &acc.Org.ID, "member.remove", "member", idStr(m.ID), m.User.Email, nil)
	})
}
