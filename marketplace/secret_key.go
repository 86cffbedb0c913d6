package marketplace

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/plugboard/plugboard/app/secret"
)

// boxPurpose is the key derivation purpose of every value the marketplace
// seals at rest.
const boxPurpose = "webhook-secrets"

// keyCheckPlaintext is what the key check seals.
const keyCheckPlaintext = "plugboard secret key check"

// ErrSecretKeyMismatch means the configured secret key is not the one the
// database's secrets were sealed with.
var ErrSecretKeyMismatch = errors.New("PLUGBOARD_SECRET_KEY is not the key this database's secrets were sealed with: " +
	"start with the original key (PLUGBOARD_SECRET_KEY or the file PLUGBOARD_SECRET_KEY_FILE names), " +
	"or re-seal them with `plugboard secrets rotate-key --old OLD --new NEW`")

type secretKeyCheck struct {
	ID        int16
	Sealed    []byte
	CreatedAt time.Time
	RotatedAt *time.Time
}

func (secretKeyCheck) TableName() string { return "secret_key_checks" }

// CheckSecretKey makes sure key opens what db holds sealed: the first
// start on a database records a value sealed under key; every later start
// opens it, and a key that cannot is ErrSecretKeyMismatch. A database
// whose migrations have not created the check yet is not checked.
func CheckSecretKey(ctx context.Context, db *gorm.DB, key string) error {
	box, err := secret.NewBox(key, boxPurpose)
	if err != nil {
		return err
	}
	var stored secretKeyCheck
	err = db.WithContext(ctx).Take(&stored, 1).Error
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "42P01" { // undefined_table: not migrated yet
		return nil
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		// The first start with a check: secrets sealed before it must open
		// with key too, or the check would record the wrong key.
		var sealed [][]byte
		if err := db.WithContext(ctx).Table("apps").Where("length(webhook_secret) > 0").Limit(1).Pluck("webhook_secret", &sealed).Error; err != nil {
			return fmt.Errorf("reading a sealed secret: %w", err)
		}
		if len(sealed) > 0 {
			if _, err := box.Open(sealed[0]); err != nil {
				return ErrSecretKeyMismatch
			}
		}
		row := secretKeyCheck{ID: 1, Sealed: box.Seal(keyCheckPlaintext), CreatedAt: time.Now().UTC()}
		if err := db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
			return fmt.Errorf("recording the secret key check: %w", err)
		}
		err = db.WithContext(ctx).Take(&stored, 1).Error
	}
	if err != nil {
		return fmt.Errorf("reading the secret key check: %w", err)
	}
	if got, err := box.Open(stored.Sealed); err != nil || got != keyCheckPlaintext {
		return ErrSecretKeyMismatch
	}
	return nil
}

// sealedColumns are every column the marketplace seals under the secret
// key, by table.
var sealedColumns = map[string][]string{
	"apps":                     {"webhook_secret", "previous_webhook_secret", "client_secret_sealed"},
	"installation_config_vars": {"value_sealed"},
}

// RotateSecretKey re-seals every stored secret from old to fresh in one
// transaction and records the new key check; a value old cannot open
// stops it, changing nothing. It returns how many values it re-sealed.
func RotateSecretKey(ctx context.Context, db *gorm.DB, old, fresh string) (int, error) {
	if old == fresh {
		return 0, errors.New("the old and the new key are the same")
	}
	from, err := secret.NewBox(old, boxPurpose)
	if err != nil {
		return 0, err
	}
	to, err := secret.NewBox(fresh, boxPurpose)
	if err != nil {
		return 0, err
	}
	n := 0
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var check secretKeyCheck
		if err := tx.Clauses(lockForUpdate).Take(&check, 1).Error; err == nil {
			if got, err := from.Open(check.Sealed); err != nil || got != keyCheckPlaintext {
				return errors.New("--old is not the key this database's secrets are sealed with")
			}
		} else if !errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("reading the secret key check: %w", err)
		}
		for table, cols := range sealedColumns {
			for _, col := range cols {
				var rows []struct {
					ID     int64
					Sealed []byte
				}
				if err := tx.Table(table).Select("id, " + col + " AS sealed").Where(col + " IS NOT NULL AND length(" + col + ") > 0").
					Clauses(lockForUpdate).Scan(&rows).Error; err != nil {
					return fmt.Errorf("reading %s.%s: %w", table, col, err)
				}
				for _, r := range rows {
					plain, err := from.Open(r.Sealed)
					if err != nil {
						return fmt.Errorf("%s.%s of row %d does not open with --old: %w", table, col, r.ID, err)
					}
					if err := tx.Table(table).Where("id = ?", r.ID).Update(col, to.Seal(plain)).Error; err != nil {
						return fmt.Errorf("re-sealing %s.%s of row %d: %w", table, col, r.ID, err)
					}
					n++
				}
			}
		}
		now := time.Now().UTC()
		return tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}},
			DoUpdates: clause.Assignments(map[string]any{"sealed": to.Seal(keyCheckPlaintext), "rotated_at": now})}).
			Create(&secretKeyCheck{ID: 1, Sealed: to.Seal(keyCheckPlaintext), CreatedAt: now, RotatedAt: &now}).Error
	})
	return n, err
}
