package platform

import (
	"context"
	"database/sql"
	"fmt"
	"io"

	"github.com/plugboard/plugboard/config"
	"github.com/plugboard/plugboard/migrations"
)

// Migrate runs `plugboard migrate up|down|status` against cfg's database,
// creating the database first for up.
func Migrate(ctx context.Context, cfg config.Config, action string, out io.Writer) error {
	if action == "up" {
		created, err := migrations.EnsureDatabase(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(out, "created database %s (PLUGBOARD_DATABASE_URL named a database that did not exist)\n", databaseName(cfg.DatabaseURL))
		}
	}
	db, err := sql.Open("pgx", cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("opening database: %w", err)
	}
	defer db.Close()
	switch action {
	case "up":
		n, err := migrations.Up(ctx, db)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "applied %d migration(s)\n", n)
	case "down":
		v, err := migrations.Down(ctx, db)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "rolled back migration %05d\n", v)
	case "status":
		return migrations.Status(ctx, db, out)
	default:
		return fmt.Errorf("unknown migrate action %q", action)
	}
	return nil
}
