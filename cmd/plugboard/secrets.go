package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"

	"github.com/plugboard/plugboard/config"
	"github.com/plugboard/plugboard/marketplace"
)

const secretsSynopsis = "secrets rotate-key --old OLD|--old-file FILE --new NEW|--new-file FILE"

// cmdSecrets re-seals the secrets stored in the database (apps' webhook
// and client secrets) under a new PLUGBOARD_SECRET_KEY. It opens the
// configured database itself: the platform would refuse to start with
// either key half-way, and the configured key is not used.
func cmdSecrets(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
	fs := flags("secrets", secretsSynopsis, out)
	old := fs.String("old", "", "the key the secrets are sealed with now")
	oldFile := fs.String("old-file", "", "a file holding the old key (instead of --old)")
	fresh := fs.String("new", "", "the key to seal them with, at least 32 characters of random text")
	freshFile := fs.String("new-file", "", "a file holding the new key (instead of --new)")
	_, args, err := fs.action(args, "rotate-key")
	if err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fs.usageErr("secrets rotate-key: unexpected argument %q", fs.Arg(0))
	}
	from, err := keyFlag(fs, "old", *old, *oldFile)
	if err != nil {
		return err
	}
	to, err := keyFlag(fs, "new", *fresh, *freshFile)
	if err != nil {
		return err
	}
	if len(to) < 32 {
		return fs.usageErr("secrets rotate-key: the new key has %d characters; it needs at least 32 of random text", len(to))
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	db, err := gorm.Open(postgres.Open(cfg.DatabaseURL), &gorm.Config{Logger: gormlogger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		return fmt.Errorf("secrets rotate-key: opening database %s: %w", config.MaskURL(cfg.DatabaseURL), err)
	}
	if sqlDB, err := db.DB(); err == nil {
		defer sqlDB.Close()
	}
	n, err := marketplace.RotateSecretKey(ctx, db, from, to)
	if err != nil {
		return fmt.Errorf("secrets rotate-key: nothing changed: %w", err)
	}
	fmt.Fprintf(out, "Re-sealed %d secret values under the new key.\n", n)
	fmt.Fprintln(out, "Next: start the platform with PLUGBOARD_SECRET_KEY=<new> (or PLUGBOARD_SECRET_KEY_FILE naming a file that holds it);")
	fmt.Fprintln(out, "it no longer starts with the old key.")
	return nil
}

// keyFlag is the key --NAME or --NAME-file gives, exactly one of them.
// A file's key is trimmed of surrounding white space, as the platform
// trims PLUGBOARD_SECRET_KEY_FILE's.
func keyFlag(fs *flagSet, name, value, file string) (string, error) {
	switch {
	case value != "" && file != "":
		return "", fs.usageErr("secrets rotate-key: pass --%s or --%s-file, not both", name, name)
	case value != "":
		return value, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("secrets rotate-key: --%s-file: %w", name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", fs.usageErr("secrets rotate-key: --%s or --%s-file is required", name, name)
}
