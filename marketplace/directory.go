package marketplace

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/page"
	"gorm.io/gorm"
)

// Directory sort orders.
const (
	SortName     = "name"
	SortInstalls = "-installs"
	SortCreated  = "-dateCreated"
)

// Directory lists published public apps, plus the actor's organizations'
// unpublished public ones; operators may filter by any status.
func (s *Apps) Directory(ctx context.Context, a Actor, dq DirectoryQuery, r page.Request) (page.Page[AppView], error) {
	var none page.Page[AppView]
	f := fault.Fields{}
	f.Check(dq.Category != "" && !slices.Contains(Categories, dq.Category), "category", "must be one of "+strings.Join(Categories, ", "))
	f.Check(dq.Status != "" && !a.IsOperator(), "status", "only operators filter by status")
	f.Check(dq.Status != "" && !slices.Contains([]string{StatusDraft, StatusSubmitted, StatusPublished, StatusRejected, StatusSuspended}, dq.Status),
		"status", "must be draft, submitted, published, rejected or suspended")
	f.Check(utf8.RuneCountInString(dq.Query) > 200, "query", "must be at most 200 characters")
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
	p := page.Finish(rows, r, sort, key)
	return page.Map(p, func(app App) AppView {
		private := a.IsOperator() || slices.Contains(orgIDs, app.OrganizationID)
		return AppView{App: app, Private: private}
	}), nil
}

// DirectoryQuery filters the marketplace directory.
type DirectoryQuery struct {
	Query    string
	Category string
	SortBy   string
	Status   string // operators only: the review queue is status=submitted
	Plans    bool   // load each app's plans
}
