package marketplace

import (
	"context"
	"errors"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/plugboard/plugboard/app/secret"
	"github.com/plugboard/plugboard/app/testenv"
)

func openTestDB(t *testing.T) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(postgres.Open(testenv.DB(t)), &gorm.Config{SkipDefaultTransaction: true, Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	return db
}

const (
	keyA = "key-a-0123456789-0123456789-0123456789"
	keyB = "key-b-0123456789-0123456789-0123456789"
)

// insertSealedApp stores an app whose secrets are sealed under key, as
// Apps.CreateApp does.
func insertSealedApp(t *testing.T, db *gorm.DB, key, slug, webhookSecret string) {
	t.Helper()
	box, err := secret.NewBox(key, boxPurpose)
	if err != nil {
		t.Fatal(err)
	}
	org := Organization{Slug: slug + "-org", Name: slug}
	if err := db.Create(&org).Error; err != nil {
		t.Fatal(err)
	}
	app := App{OrganizationID: org.ID, Slug: slug, Name: slug, Kind: KindPublic, Status: StatusDraft, ClientID: slug,
		Categories: Strings{}, Scopes: Strings{}, Events: Strings{},
		WebhookSecret: box.Seal(webhookSecret), ClientSecretSealed: box.Seal("pbcs_" + slug), ClientSecretHash: secret.Hash("pbcs_" + slug)}
	if err := db.Omit("Organization", "Plans").Create(&app).Error; err != nil {
		t.Fatal(err)
	}
}

func TestCheckSecretKey(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		sealed string // key the app's secrets are sealed under; "" for none
		first  string // key of the first start
		then   string // key of the second start
		want   [2]error
	}{
		{"same key twice", "", keyA, keyA, [2]error{nil, nil}},
		{"a new key on a set-up database", "", keyA, keyB, [2]error{nil, ErrSecretKeyMismatch}},
		{"first check with secrets sealed under another key", keyA, keyB, keyB, [2]error{ErrSecretKeyMismatch, ErrSecretKeyMismatch}},
		{"first check with secrets sealed under the key", keyA, keyA, keyA, [2]error{nil, nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openTestDB(t)
			if tc.sealed != "" {
				insertSealedApp(t, db, tc.sealed, "sealed-app", "whsec_x")
			}
			for i, key := range []string{tc.first, tc.then} {
				if err := CheckSecretKey(ctx, db, key); !errors.Is(err, tc.want[i]) {
					t.Fatalf("start %d: got %v, want %v", i+1, err, tc.want[i])
				}
			}
		})
	}
}

func TestRotateSecretKey(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	if err := CheckSecretKey(ctx, db, keyA); err != nil {
		t.Fatal(err)
	}
	insertSealedApp(t, db, keyA, "one", "whsec_one")
	insertSealedApp(t, db, keyA, "two", "whsec_two")
	// A config var, sealed under the key as ConfigVars.Set does.
	var one App
	if err := db.Where("slug = ?", "one").First(&one).Error; err != nil {
		t.Fatal(err)
	}
	inst := Installation{UUID: "0b5e7a4c-3f1d-4e8a-9c2b-6d7e8f9a0b1c", AppID: one.ID, OrganizationID: one.OrganizationID,
		Status: InstallInstalled, SyncState: InSync, Scopes: Strings{}}
	if err := db.Omit("App", "Organization", "Plan").Create(&inst).Error; err != nil {
		t.Fatal(err)
	}
	boxA, _ := secret.NewBox(keyA, boxPurpose)
	if err := db.Create(&configVarRow{InstallationID: inst.ID, Name: "ONE_URL", ValueSealed: boxA.Seal("https://one.example/x")}).Error; err != nil {
		t.Fatal(err)
	}

	if _, err := RotateSecretKey(ctx, db, keyB, keyA); err == nil {
		t.Fatal("rotating with the wrong --old key went through")
	}
	if err := CheckSecretKey(ctx, db, keyA); err != nil {
		t.Fatalf("a refused rotation changed the key check: %v", err)
	}

	n, err := RotateSecretKey(ctx, db, keyA, keyB)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 { // two apps, each a webhook secret and a client secret, and a config var
		t.Fatalf("re-sealed %d values, want 5", n)
	}
	if err := CheckSecretKey(ctx, db, keyB); err != nil {
		t.Fatalf("the new key fails the check after rotation: %v", err)
	}
	if err := CheckSecretKey(ctx, db, keyA); !errors.Is(err, ErrSecretKeyMismatch) {
		t.Fatalf("the old key still passes after rotation: %v", err)
	}
	box, _ := secret.NewBox(keyB, boxPurpose)
	var cv configVarRow
	if err := db.Where("name = ?", "ONE_URL").First(&cv).Error; err != nil {
		t.Fatal(err)
	}
	if got, err := box.Open(cv.ValueSealed); err != nil || got != "https://one.example/x" {
		t.Fatalf("config var after rotation = %q, %v", got, err)
	}
	var apps []App
	if err := db.Order("slug").Find(&apps).Error; err != nil {
		t.Fatal(err)
	}
	for _, app := range apps {
		got, err := box.Open(app.WebhookSecret)
		if err != nil || got != "whsec_"+app.Slug {
			t.Fatalf("%s: webhook secret after rotation = %q, %v", app.Slug, got, err)
		}
		if got, err := box.Open(app.ClientSecretSealed); err != nil || got != "pbcs_"+app.Slug {
			t.Fatalf("%s: client secret after rotation = %q, %v", app.Slug, got, err)
		}
	}
}
