package migrations_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plugboard/plugboard/app/testenv"
	"github.com/plugboard/plugboard/migrations"
)

// EnsureDatabase says whether it created the database, so that start-up can
// tell a developer whose PLUGBOARD_DATABASE_URL names one that did not exist.
func TestEnsureDatabaseSaysWhenItCreates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "plugboard_ensure_" + hex.EncodeToString(b[:])
	u, err := url.Parse(testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), testenv.PostgresURL())
		if err != nil {
			t.Errorf("dropping %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping %s: %v", name, err)
		}
	})

	created, err := migrations.EnsureDatabase(ctx, u.String())
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v, want created", created, err)
	}
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("the created database does not answer: %v", err)
	}
	conn.Close(ctx)
	created, err = migrations.EnsureDatabase(ctx, u.String())
	if err != nil || created {
		t.Fatalf("second call: created=%v err=%v, want an existing database left alone", created, err)
	}
}
