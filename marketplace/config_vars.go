package marketplace

// Config vars: what a partner hands the customer's product when it
// provisions (Heroku's PAGER_URL=…): named values on an installation,
// sealed at rest under the secret key as webhook secrets are. The partner
// sets them with the installation's token (or in its provisioning answer);
// the organization's admins and the host product read them. Their names
// are audited and published, their values never: not in the audit log, not
// in events, not in logs.

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/plugboard/plugboard/app/fault"
)

// Limits of config vars.
const (
	MaxConfigVars     = 64
	MaxConfigVarValue = 8 << 10 // bytes
)

// EventInstallationConfigUpdated is published to host endpoints when an
// installation's config vars change: {installation, changed: [names]}.
const EventInstallationConfigUpdated = "installation.config_updated"

var (
	configVarNameRe = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)
	configPrefixRe  = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,30}_$`)
)

// ConfigVars are installations' config vars.
type ConfigVars struct {
	*core
	installs *Installs
}

// ConfigVar is one config var, opened.
type ConfigVar struct {
	Name      string
	Value     string
	UpdatedAt time.Time
}

// configVarRow is a config var as stored: its value sealed.
type configVarRow struct {
	ID             int64
	InstallationID int64
	Name           string
	ValueSealed    []byte
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

func (configVarRow) TableName() string { return "installation_config_vars" }

// ConfigVarPrefix is the prefix every config var name of the app starts
// with: its configPrefix, or one derived from its slug (pager-bot →
// PAGER_BOT_).
func (a *App) ConfigVarPrefix() string {
	if a.ConfigPrefix != "" {
		return a.ConfigPrefix
	}
	return strings.ToUpper(strings.ReplaceAll(a.Slug, "-", "_")) + "_"
}

func checkConfigPrefix(f fault.Fields, prefix string) {
	f.Check(prefix != "" && !configPrefixRe.MatchString(prefix), "configPrefix",
		"must be 2 to 32 upper-case letters, digits or underscores, starting with a letter and ending with an underscore: PAGER_BOT_")
}

// checkConfigVars validates a change of vars (nil: delete) against the
// app's prefix; field is the JSON path of the map ("vars", "config").
func checkConfigVars(f fault.Fields, field, prefix string, vars map[string]*string) {
	for name, v := range vars {
		at := field + "." + name
		switch {
		case !configVarNameRe.MatchString(name):
			f.Add(at, "must be 1 to 64 upper-case letters, digits or underscores, starting with a letter")
		case !strings.HasPrefix(name, prefix):
			f.Add(at, "must start with the app's config prefix "+prefix)
		case v != nil && len(*v) > MaxConfigVarValue:
			f.Add(at, fmt.Sprintf("must be at most %d bytes", MaxConfigVarValue))
		}
	}
}

// loadVars returns an installation's config vars by name, opened.
func (s *core) loadVars(ctx context.Context, db *gorm.DB, installationID int64) ([]ConfigVar, error) {
	var rows []configVarRow
	if err := db.WithContext(ctx).Where("installation_id = ?", installationID).Order("name").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("loading config vars: %w", err)
	}
	out := make([]ConfigVar, len(rows))
	for i, r := range rows {
		v, err := s.box.Open(r.ValueSealed)
		if err != nil {
			return nil, fmt.Errorf("opening config var %s: %w", r.Name, err)
		}
		out[i] = ConfigVar{Name: r.Name, Value: v, UpdatedAt: r.UpdatedAt}
	}
	return out, nil
}

// configVarNames returns an installation's config var names, sorted,
// without opening a value.
func (s *core) configVarNames(ctx context.Context, installationID int64) ([]string, error) {
	var names []string
	if err := s.db.WithContext(ctx).Model(&configVarRow{}).Where("installation_id = ?", installationID).Order("name").
		Pluck("name", &names).Error; err != nil {
		return nil, fmt.Errorf("listing config var names: %w", err)
	}
	return names, nil
}

// applyVars writes a change of inst's config vars in tx (validated by the
// caller, nil values deleting), audits the names changed and publishes
// installation.config_updated to host endpoints. It returns the names
// changed, sorted; none, and nothing written, when nothing changed.
func (s *core) applyVars(ctx context.Context, tx *gorm.DB, a Actor, inst *Installation, vars map[string]*string) ([]string, error) {
	if len(vars) == 0 {
		return nil, nil
	}
	current, err := s.loadVars(ctx, tx, inst.ID)
	if err != nil {
		return nil, err
	}
	have := map[string]string{}
	for _, v := range current {
		have[v.Name] = v.Value
	}
	var changed []string
	for name, v := range vars {
		old, ok := have[name]
		switch {
		case v == nil && ok:
			delete(have, name)
		case v != nil && (!ok || old != *v):
			have[name] = *v
		default:
			continue
		}
		changed = append(changed, name)
	}
	if len(changed) == 0 {
		return nil, nil
	}
	if len(have) > MaxConfigVars {
		return nil, fault.Field("vars", fmt.Sprintf("an installation holds at most %d config vars; this would make %d", MaxConfigVars, len(have)))
	}
	sort.Strings(changed)
	now := s.now()
	for _, name := range changed {
		v := vars[name]
		if v == nil {
			if err := tx.Where("installation_id = ? AND name = ?", inst.ID, name).Delete(&configVarRow{}).Error; err != nil {
				return nil, fmt.Errorf("deleting config var %s: %w", name, err)
			}
			continue
		}
		row := configVarRow{InstallationID: inst.ID, Name: name, ValueSealed: s.box.Seal(*v), CreatedAt: now, UpdatedAt: now}
		if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "installation_id"}, {Name: "name"}},
			DoUpdates: clause.Assignments(map[string]any{"value_sealed": row.ValueSealed, "updated_at": now})}).Create(&row).Error; err != nil {
			return nil, fmt.Errorf("setting config var %s: %w", name, err)
		}
	}
	label := ""
	if inst.App != nil {
		label = inst.App.Slug
	}
	if err := s.audit(tx, a, &inst.OrganizationID, "installation.config_vars", "installation", inst.UUID, label, JSON{"changed": changed}); err != nil {
		return nil, err
	}
	if err := s.publishHost(ctx, tx, EventInstallationConfigUpdated, s.hostConfigData(ctx, tx, inst, changed)); err != nil {
		return nil, fmt.Errorf("publishing %s: %w", EventInstallationConfigUpdated, err)
	}
	return changed, nil
}

// readable finds installation id for an actor who may read its config
// vars: its own installation token, its organization's admins, and host
// service tokens.
func (s *ConfigVars) readable(ctx context.Context, a Actor, id string) (*Installation, error) {
	inst, err := s.installs.loadInstallation(ctx, s.db, id, false)
	if err != nil {
		return nil, err
	}
	if a.Service != nil {
		return inst, nil
	}
	sd, err := s.installs.sideOf(ctx, s.db, a, inst)
	if err != nil {
		return nil, err
	}
	switch {
	case sd == sideAdmin, sd == sideApp && a.Installation != nil:
		return inst, nil
	case sd == sideMember:
		return nil, fault.Forbidden(fault.InsufficientRole, "Reading config vars needs the admin role in the organization.")
	case sd == sideApp:
		return nil, fault.Forbidden(fault.AppOnly, "The app reads its config vars with the installation's access token.")
	}
	return nil, fault.NotFound("installation")
}

// List returns installation id's config vars, by name, to its installation
// token, its organization's admins and host service tokens.
func (s *ConfigVars) List(ctx context.Context, a Actor, id string) ([]ConfigVar, error) {
	inst, err := s.readable(ctx, a, id)
	if err != nil {
		return nil, err
	}
	return s.loadVars(ctx, s.db, inst.ID)
}

// Set changes installation id's config vars (a nil value deletes one) for
// the installation's own token, and returns them all. Names must start
// with the app's config prefix; each change is audited by name and
// published as installation.config_updated.
func (s *ConfigVars) Set(ctx context.Context, a Actor, id string, vars map[string]*string) ([]ConfigVar, error) {
	if a.Service != nil { // the host reads them, and may not write
		return nil, fault.Forbidden(fault.AppOnly, "Only the app sets config vars, with the installation's access token.")
	}
	var out []ConfigVar
	err := s.publishTx(ctx, func(tx *gorm.DB) error {
		inst, sd, err := s.installs.installationFor(ctx, tx, a, id)
		if err != nil {
			return err
		}
		if sd != sideApp || a.Installation == nil {
			return fault.Forbidden(fault.AppOnly, "Only the app sets config vars, with the installation's access token.")
		}
		if !inst.Live() {
			return fault.Conflict(fault.InstallationNotLive, fmt.Sprintf("The installation is %s.", inst.Status))
		}
		if vars == nil {
			return fault.Field("vars", "is required: an object of NAME: value, or NAME: null to delete")
		}
		f := fault.Fields{}
		checkConfigVars(f, "vars", inst.App.ConfigVarPrefix(), vars)
		if err := f.Err(); err != nil {
			return err
		}
		if _, err := s.applyVars(ctx, tx, a, inst, vars); err != nil {
			return err
		}
		out, err = s.loadVars(ctx, tx, inst.ID)
		return err
	})
	return out, err
}

// Reveal opens one config var of installation id in organization orgRef
// for an admin there, from the installed-app page, and audits it (by
// name).
func (s *ConfigVars) Reveal(ctx context.Context, a Actor, orgRef, id, name string) (*ConfigVar, error) {
	acc, err := s.access(ctx, s.db, a, orgRef, RoleAdmin)
	if err != nil {
		return nil, err
	}
	inst, err := s.installs.loadInstallation(ctx, s.db, id, false)
	if err != nil {
		return nil, err
	}
	if inst.OrganizationID != acc.Org.ID || !inst.Live() {
		return nil, fault.NotFound("installation")
	}
	vars, err := s.loadVars(ctx, s.db, inst.ID)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(vars, func(v ConfigVar) bool { return v.Name == name })
	if i < 0 {
		return nil, fault.NotFound("config var")
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		return s.audit(tx, a, &acc.Org.ID, "installation.config_var_reveal", "installation", inst.UUID, inst.App.Slug, JSON{"name": name})
	})
	if err != nil {
		return nil, err
	}
	return &vars[i], nil
}
