package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/plugboard/plugboard/cmd/platform"
	"github.com/plugboard/plugboard/config"
)

func loadConfig(getenv env) (config.Config, error) {
	return config.Load(getenv)
}

func cmdServe(mode string) func(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
	return func(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
		fs := flags(mode, mode, out)
		if err := fs.Parse(args); err != nil {
			return err
		}
		cfg, err := loadConfig(getenv)
		if err != nil {
			return err
		}
		roles := platform.AllRoles
		switch mode {
		case "api":
			roles = platform.Roles{HTTP: true}
		case "worker":
			roles = platform.Roles{Worker: true, Scheduler: true}
		}
		level, _ := cfg.SlogLevel()
		log := newLogger(errOut, level, cfg.LogFormat)
		a, err := platform.New(ctx, cfg, log, roles)
		if err != nil {
			return err
		}
		return a.Run(ctx)
	}
}

func cmdVersion(_ context.Context, args []string, out, _ io.Writer, _ env) error {
	fs := flags("version", "version", out)
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Fprintln(out, "plugboard", platform.Version)
	return nil
}

func cmdConfig(_ context.Context, args []string, out, _ io.Writer, getenv env) error {
	fs := flags("config", "config", out)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	fmt.Fprint(out, cfg.String())
	return nil
}

func cmdMigrate(ctx context.Context, args []string, out, errOut io.Writer, getenv env) error {
	fs := flags("migrate", "migrate up|down|status", out)
	if err := fs.Parse(args); err != nil {
		return err
	}
	action := strings.Join(fs.Args(), " ")
	if action != "up" && action != "down" && action != "status" {
		return fs.usageErr("migrate: expected up, down or status, got %q", action)
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	return platform.Migrate(ctx, cfg, action, out)
}
