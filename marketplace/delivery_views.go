package marketplace

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// AppInstallationOrgs names the organization of each of the app's
// installations in uuids (the delivery log shows who a delivery went to);
// uuids that are not the app's are left out. For the app's owners, like
// ListDeliveries.
func (s *Service) AppInstallationOrgs(ctx context.Context, a Actor, ref string, uuids []string) (map[string]string, error) {
	v, err := s.partnerApp(ctx, a, ref)
	if err != nil {
		return nil, err
	}
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
	err = s.db.WithContext(ctx).Table("installations").Select("installations.uuid, organizations.name").
		Joins("JOIN organizations ON organizations.id = installations.organization_id").
		Where("installations.app_id = ? AND installations.uuid IN ?", v.ID, valid).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("naming installations' organizations: %w", err)
	}
	for _, r := range rows {
		out[r.UUID] = r.Name
	}
	return out, nil
}
