package marketplace

import (
	"context"
	"fmt"

	"github.com/plugboard/plugboard/app/page"
	"gorm.io/gorm"
)

// RunQuery filters run lists.
type RunQuery struct{ Job string }

// ListAppRuns shows an app's owner the runs that concern the app, with only
// the app's findings.
func (s *Reconciler) ListAppRuns(ctx context.Context, a Actor, ref string, q RunQuery, r page.Request) (page.Page[Run], error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err != nil {
		return page.Page[Run]{}, err
	}
	return s.appRuns(ctx, v.ID, q, r)
}

// appRuns are the runs that concern app appID, with only its findings.
func (s *Reconciler) appRuns(ctx context.Context, appID int64, q RunQuery, r page.Request) (page.Page[Run], error) {
	db := s.db.WithContext(ctx).Where("app_id = ? OR id IN (SELECT run_id FROM reconciliation_findings WHERE app_id = ?)", appID, appID)
	return s.listRuns(ctx, db, q, r, &appID)
}

// ListRuns shows operators every run.
func (s *Reconciler) ListRuns(ctx context.Context, a Actor, q RunQuery, r page.Request) (page.Page[Run], error) {
	if err := requireOperator(a); err != nil {
		return page.Page[Run]{}, err
	}
	return s.listRuns(ctx, s.db.WithContext(ctx), q, r, nil)
}

func (s *Reconciler) listRuns(ctx context.Context, db *gorm.DB, q RunQuery, r page.Request, appID *int64) (page.Page[Run], error) {
	if q.Job != "" {
		db = db.Where("job = ?", q.Job)
	}
	db = db.Preload("Findings", func(f *gorm.DB) *gorm.DB {
		if appID != nil {
			f = f.Where("app_id = ?", *appID)
		}
		return f.Order("id")
	})
	var rows []Run
	order := page.Sort{Column: "id", Desc: true}
	if err := page.Query(db, "id", order, r).Find(&rows).Error; err != nil {
		return page.Page[Run]{}, fmt.Errorf("listing runs: %w", err)
	}
	if appID != nil {
		for i := range rows {
			scopeRun(&rows[i])
		}
	}
	return page.Finish(rows, r, order, func(x Run) (string, int64) { return "", x.ID }), nil
}

// scopeRun narrows a run across every app to what one app's partner may
// see: its figures count only that app's findings (all of them were
// examined and found), and errors, which may name other apps, are dropped.
func scopeRun(run *Run) {
	if run.AppID != nil {
		return
	}
	run.Examined, run.Found, run.Repaired, run.Errors = len(run.Findings), len(run.Findings), 0, Strings{}
	for _, f := range run.Findings {
		if f.Repaired {
			run.Repaired++
		}
	}
}
