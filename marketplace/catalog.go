package marketplace

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
)

// Scope is a permission an app asks for.
type Scope struct {
	Name        string
	Description string
	Builtin     bool
}

// BuiltinScopes are the Platform API's own scopes.
var BuiltinScopes = []Scope{
	{"org:read", "Read the organization's name and settings", true},
	{"org:write", "Change the organization's settings", true},
	{"member:read", "See who belongs to the organization and their roles", true},
	{"member:write", "Add, change and remove members", true},
	{"installation:read", "Read its own installation in the organization", true},
	{"installation:write", "Verify and configure its own installation", true},
	{"event:read", "Read the events published in the organization", true},
	{"event:write", "Publish events in the organization", true},
}

// Scopes returns the built-in scopes and those event types declare.
func (s *Service) Scopes(ctx context.Context) ([]Scope, error) {
	out := slices.Clone(BuiltinScopes)
	extra, err := s.catalog.Scopes(ctx)
	if err != nil {
		return nil, err
	}
	for name, desc := range extra {
		if !slices.ContainsFunc(out, func(sc Scope) bool { return sc.Name == name }) {
			out = append(out, Scope{Name: name, Description: desc})
		}
	}
	slices.SortFunc(out, func(a, b Scope) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Directory sort orders.
const (
	SortName     = "name"
	SortInstalls = "-installs"
	SortCreated  = "-dateCreated"
)

// DirectoryQuery filters the marketplace directory.
type DirectoryQuery struct {
	Query    string
	Category string
	SortBy   string
	Status   string // operators only: the review queue is status=submitted
	Plans    bool   // load each app's plans
}

// Directory lists published public apps, plus the actor's organizations'
// unpublished public ones; operators may filter by any status.
func (s *Service) Directory(ctx context.Context, a Actor, dq DirectoryQuery, r page.Request) (page.Page[AppView], error) {
	var none page.Page[AppView]
	f := fault.Fields{}
	f.Check(dq.Category != "" && !slices.Contains(Categories, dq.Category), "category", "must be one of "+strings.Join(Categories, ", "))
	f.Check(dq.Status != "" && !a.IsOperator(), "status", "only operators filter by status")
	f.Check(dq.Status != "" && !slices.Contains([]string{StatusDraft, StatusSubmitted, StatusPublished, StatusRejected}, dq.Status),
		"status", "must be draft, submitted, published or rejected")
	f.Check(len(dq.Query) > 200, "query", "must be at most 200 characters")
	if err := f.Err(); err != nil {
		return none, err
	}
	q := s.db.WithContext(ctx).Model(&App{}).Preload("Organization").Where("apps.kind = ?", KindPublic)
	var orgIDs []int64
	if a.User != nil {
		if err := s.db.WithContext(ctx).Model(&Membership{}).Where("user_id = ?", a.User.ID).Pluck("organization_id", &orgIDs).Error; err != nil {
			return none, fmt.Errorf("listing memberships: %w", err)
		}
	}
	switch {
	case dq.Status != "":
		q = q.Where("apps.status = ?", dq.Status)
	case len(orgIDs) > 0:
		q = q.Where("apps.status = ? OR apps.organization_id IN ?", StatusPublished, orgIDs)
	default:
		q = q.Where("apps.status = ?", StatusPublished)
	}
	if dq.Query != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(dq.Query) + "%"
		q = q.Where("apps.name ILIKE ? OR apps.overview ILIKE ? OR apps.slug ILIKE ?", like, like, like)
	}
	if dq.Category != "" {
		q = q.Where("apps.categories @> ?", fmt.Sprintf("[%q]", dq.Category))
	}
	sort, key := page.Sort{Column: "apps.name"}, func(a App) (string, int64) { return a.Name, a.ID }
	switch dq.SortBy {
	case SortInstalls:
		sort = page.Sort{Column: "apps.installs_count", Desc: true}
		key = func(a App) (string, int64) { return strconv.Itoa(a.InstallsCount), a.ID }
	case SortCreated:
		sort = page.Sort{Column: "apps.created_at", Desc: true}
		key = func(a App) (string, int64) { return a.CreatedAt.UTC().Format("2006-01-02T15:04:05.999999Z07:00"), a.ID }
	}
	if dq.Plans {
		q = q.Preload("Plans", func(db *gorm.DB) *gorm.DB { return db.Order("price, id") })
	}
	var rows []App
	if err := page.Query(q, "apps.id", sort, r).Find(&rows).Error; err != nil {
		return none, fmt.Errorf("listing directory: %w", err)
	}
	p := page.Finish(rows, r, key)
	return page.Map(p, func(app App) AppView {
		private := a.IsOperator() || slices.Contains(orgIDs, app.OrganizationID)
		return AppView{App: app, Private: private}
	}), nil
}

// AuditQuery filters the audit log.
type AuditQuery struct {
	Action string
}

// AuditLog lists an organization's audit entries, newest first; admins.
func (s *Service) AuditLog(ctx context.Context, a Actor, ref string, aq AuditQuery, r page.Request) (page.Page[AuditEntry], error) {
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
