package marketplace

import (
	"context"
	"fmt"
	"time"

	"github.com/plugboard/plugboard/app/page"
	"gorm.io/gorm"
)

// liveIn selects organization orgID's live installations.
func (s *core) liveIn(orgID int64) *gorm.DB {
	return s.db.Where("installations.organization_id = ? AND installations.status IN ?", orgID, LiveStatuses)
}

// InstallationSummary is what an organization's installed-apps page shows
// beside each installation: who installed it and how its webhooks fare.
type InstallationSummary struct {
	InstalledBy string // the installer's name or email; "" when unknown
	// The latest delivery to the installation; LastStatus is "" when
	// nothing was ever delivered.
	LastStatus string
	LastAt     time.Time
	// Deliveries created in the last 24 hours, and how many succeeded.
	Total24h     int
	Succeeded24h int
}

// summaries are the installer and delivery health of organization orgID's
// installations in insts, keyed by installation id, for whoever was let
// read them; ids of other organizations' installations are ignored.
func (s *Installs) summaries(ctx context.Context, orgID int64, insts []Installation) (map[int64]InstallationSummary, error) {
	out := make(map[int64]InstallationSummary, len(insts))
	if len(insts) == 0 {
		return out, nil
	}
	ids := make([]int64, 0, len(insts))
	var users []int64
	for _, i := range insts {
		if i.OrganizationID != orgID {
			continue
		}
		ids = append(ids, i.ID)
		if i.InstalledBy != nil {
			users = append(users, *i.InstalledBy)
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	db := s.db.WithContext(ctx)

	var latest []struct {
		InstallationID int64
		Status         string
		CreatedAt      time.Time
		CompletedAt    *time.Time
	}
	// One index probe per installation (deliveries_installation_recent_idx).
	if err := db.Raw(`SELECT i.id AS installation_id, d.status, d.created_at, d.completed_at
		FROM installations i
		CROSS JOIN LATERAL (SELECT status, created_at, completed_at FROM deliveries
		                    WHERE installation_id = i.id ORDER BY created_at DESC LIMIT 1) d
		WHERE i.id IN ? AND i.organization_id = ?`, ids, orgID).Scan(&latest).Error; err != nil {
		return nil, fmt.Errorf("finding latest deliveries: %w", err)
	}
	for _, l := range latest {
		sum := out[l.InstallationID]
		sum.LastStatus, sum.LastAt = l.Status, l.CreatedAt
		if l.CompletedAt != nil {
			sum.LastAt = *l.CompletedAt
		}
		out[l.InstallationID] = sum
	}

	var counts []struct {
		InstallationID int64
		Total          int
		Succeeded      int
	}
	if err := db.Raw(`SELECT installation_id, count(*) AS total, count(*) FILTER (WHERE status = 'succeeded') AS succeeded
		FROM deliveries WHERE organization_id = ? AND installation_id IN ? AND created_at > ?
		GROUP BY installation_id`, orgID, ids, s.now().Add(-24*time.Hour)).Scan(&counts).Error; err != nil {
		return nil, fmt.Errorf("counting recent deliveries: %w", err)
	}
	for _, c := range counts {
		sum := out[c.InstallationID]
		sum.Total24h, sum.Succeeded24h = c.Total, c.Succeeded
		out[c.InstallationID] = sum
	}

	if len(users) > 0 {
		var us []User
		if err := db.Select("id", "name", "email").Where("id IN ?", users).Find(&us).Error; err != nil {
			return nil, fmt.Errorf("finding installers: %w", err)
		}
		names := make(map[int64]string, len(us))
		for _, u := range us {
			names[u.ID] = u.Name
			if u.Name == "" {
				names[u.ID] = u.Email
			}
		}
		for _, i := range insts {
			if i.InstalledBy != nil && i.OrganizationID == orgID {
				sum := out[i.ID]
				sum.InstalledBy = names[*i.InstalledBy]
				out[i.ID] = sum
			}
		}
	}
	return out, nil
}

func (s *Installs) listInstallations(ctx context.Context, q *gorm.DB, iq InstallationQuery, r page.Request) (page.Page[Installation], error) {
	q, err := iq.apply(preloadPending(q.WithContext(ctx).Preload("App").Preload("Organization").Preload("Plan")))
	if err != nil {
		return page.Page[Installation]{}, err
	}
	var rows []Installation
	order := page.Sort{Column: "installations.id", Desc: true}
	if err := page.Query(q, "installations.id", order, r).Find(&rows).Error; err != nil {
		return page.Page[Installation]{}, fmt.Errorf("listing installations: %w", err)
	}
	return page.Finish(rows, r, order, func(i Installation) (string, int64) { return "", i.ID }), nil
}

// ListOrgInstallations lists the apps installed in an organization; members.
func (s *Installs) ListOrgInstallations(ctx context.Context, a Actor, orgRef string, iq InstallationQuery, r page.Request) (page.Page[Installation], error) {
	acc, err := s.access(ctx, s.db, a, orgRef, RoleMember)
	if err != nil {
		return page.Page[Installation]{}, err
	}
	return s.listInstallations(ctx, s.db.Where("installations.organization_id = ?", acc.Org.ID), iq, r)
}

// ListAppInstallations lists an app's installations to its owner
// organization's members or the app itself.
func (s *Installs) ListAppInstallations(ctx context.Context, a Actor, appRef string, iq InstallationQuery, r page.Request) (page.Page[Installation], error) {
	v, err := s.partnerApp(ctx, a, appRef)
	if err != nil {
		return page.Page[Installation]{}, err
	}
	return s.listInstallations(ctx, s.db.Where("installations.app_id = ?", v.ID), iq, r)
}

// InstallationQuery filters installation lists.
type InstallationQuery struct {
	Status    string
	SyncState string
	// Permissions "pending": only installations whose organization has
	// new permissions of an approved revision to accept.
	Permissions string
}
