package marketplace

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/webhooks"
)

// InstallationChoice is one installation the delivery log filters by.
type InstallationChoice struct {
	UUID, Org, Status string
}

// DeliveryLogPage is what an app's delivery log page shows: a page of
// deliveries, the installations to filter by, and the organization each
// delivery went to.
type DeliveryLogPage struct {
	Deliveries    page.Page[webhooks.Delivery]
	Installations []InstallationChoice
	// OrgOf names the organization of each installation uuid shown.
	OrgOf map[string]string
}

// LogPage is the delivery log page of app ref for its owners: one call
// for the page's data. With a nil dq (a filter the page could not read)
// it lists only the installations. A filter ListDeliveries refuses fails
// as it does, the installations still listed in the page returned.
func (s *Deliveries) LogPage(ctx context.Context, a Actor, ref string, dq *webhooks.DeliveryQuery, r page.Request) (*DeliveryLogPage, error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
	out := &DeliveryLogPage{OrgOf: map[string]string{}}
	insts, err := s.installs.listInstallations(ctx, s.db.Where("installations.app_id = ?", v.ID), InstallationQuery{}, page.Request{Limit: page.MaxLimit})
	if err != nil {
		return nil, err
	}
	for _, in := range insts.Items {
		c := InstallationChoice{UUID: in.UUID, Status: in.Status}
		if in.Organization != nil {
			c.Org = in.Organization.Name
		}
		out.OrgOf[in.UUID] = c.Org
		out.Installations = append(out.Installations, c)
	}
	if dq == nil {
		return out, nil
	}
	out.Deliveries, err = s.log.ListDeliveries(ctx, v.ID, *dq, r)
	if err != nil {
		return out, err
	}
	// Installations beyond the first page of choices, the one filtered on
	// included: named in one more query.
	var missing []string
	for _, d := range out.Deliveries.Items {
		if d.InstallationUUID != nil {
			if _, ok := out.OrgOf[*d.InstallationUUID]; !ok {
				missing = append(missing, *d.InstallationUUID)
			}
		}
	}
	_, listed := out.OrgOf[dq.InstallationUUID]
	if dq.InstallationUUID != "" && !listed {
		missing = append(missing, dq.InstallationUUID)
	}
	more, err := s.installationOrgs(ctx, v.ID, missing)
	if err != nil {
		return nil, err
	}
	for k, name := range more {
		out.OrgOf[k] = name
	}
	if name := more[dq.InstallationUUID]; name != "" {
		out.Installations = append(out.Installations, InstallationChoice{UUID: dq.InstallationUUID, Org: name})
	}
	return out, nil
}

// installationOrgs names the organization of each of app appID's
// installations in uuids; uuids that are not the app's are left out.
func (s *Deliveries) installationOrgs(ctx context.Context, appID int64, uuids []string) (map[string]string, error) {
	out := map[string]string{}
	// Compared as uuids, so the lookup uses the installations' uuid index
	// (a text cast would read every installation of the app); what is not
	// a uuid names no installation.
	valid := make([]string, 0, len(uuids))
	for _, u := range uuids {
		if _, err := uuid.Parse(u); err == nil {
			valid = append(valid, u)
		}
	}
	if len(valid) == 0 {
		return out, nil
	}
	var rows []struct {
		UUID string
		Name string
	}
	err := s.db.WithContext(ctx).Table("installations").Select("installations.uuid, organizations.name").
		Joins("JOIN organizations ON organizations.id = installations.organization_id").
		Where("installations.app_id = ? AND installations.uuid IN ?", appID, valid).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("naming installations' organizations: %w", err)
	}
	for _, r := range rows {
		out[r.UUID] = r.Name
	}
	return out, nil
}
