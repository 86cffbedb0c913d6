package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/plugboard/plugboard/migrations"
)

// The api mode's seeded database is kept between runs: building 10 million
// attempts takes minutes, reading them takes seconds. Its name says what it
// holds (the schema, the seed's shape, the apps and attempts), so a run with
// another schema or size builds its own; a table of its own, bench_world,
// says the seeding finished and what setup made (the partner, the apps).
// One seeded more than -reuse-age ago is built again: the seeded log ends
// when it was seeded, and a dashboard's last 24 hours should be full.

// seedVersion changes when seedAttempts changes what it stores.
const seedVersion = 2

// seededName is the kept database for o: schema hash (every migration file,
// as app/testenv names its template), seed version, apps × attempts.
func seededName(o options) string {
	h := sha256.New()
	_ = fs.WalkDir(migrations.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(migrations.FS(), p)
		h.Write([]byte(p))
		h.Write(b)
		return nil
	})
	return fmt.Sprintf("plugboard_bench_api_%s_s%d_%dx%d", hex.EncodeToString(h.Sum(nil))[:10], seedVersion, o.apps, o.attempts)
}

// savedWorld is what bench_world keeps of setup's world.
type savedWorld struct {
	Run      string    `json:"run"`
	Apps     []string  `json:"apps"`
	Orgs     []string  `json:"orgs"`
	Installs int       `json:"installs"`
	SeededAt time.Time `json:"seededAt"`
}

// seeded is the api mode's kept database while a run uses it: lock is the
// session that holds the advisory lock on its name until it is seeded (so
// that two runs do not seed one database at once), saved what a finished
// seeding left (nil: seed it now).
type seeded struct {
	name  string
	lock  *pgx.Conn
	saved *savedWorld
}

func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64() >> 1)
}

// openSeeded finds or makes the kept database for o on the server and
// returns its URL. A database of that name that was not seeded to the end,
// or too long ago, is dropped and made again from the migrated template.
func openSeeded(ctx context.Context, o options, tmpl string, logf func(string, ...any)) (*seeded, string, error) {
	name := seededName(o)
	u, err := url.Parse(o.postgres)
	if err != nil {
		return nil, "", err
	}
	u.Path = "/" + name
	dbURL := u.String()
	conn, err := pgx.Connect(ctx, o.postgres)
	if err != nil {
		return nil, "", err
	}
	s := &seeded{name: name, lock: conn}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey(name)); err != nil {
		conn.Close(context.Background())
		return nil, "", fmt.Errorf("locking %s: %w", name, err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		s.release()
		return nil, "", err
	}
	if exists {
		if sw, err := readSaved(ctx, dbURL); err == nil && sw != nil && time.Since(sw.SeededAt) < o.reuseAge {
			s.saved = sw
			logf("reusing %s: %d attempts over %d apps, seeded %s ago (-fresh to seed again)", name, o.attempts, len(sw.Apps), time.Since(sw.SeededAt).Round(time.Minute))
			s.release() // seeded: nothing left to guard
			return s, dbURL, nil
		}
		logf("dropping %s: not seeded to the end, or more than %s ago", name, o.reuseAge)
	}
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		s.release()
		return nil, "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident+" TEMPLATE "+pgx.Identifier{tmpl}.Sanitize()); err != nil {
		s.release()
		return nil, "", fmt.Errorf("creating %s: %w", name, err)
	}
	return s, dbURL, nil
}

func readSaved(ctx context.Context, dbURL string) (*savedWorld, error) {
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	var raw []byte
	if err := c.QueryRow(ctx, "SELECT world FROM bench_world").Scan(&raw); err != nil {
		return nil, err
	}
	var sw savedWorld
	return &sw, json.Unmarshal(raw, &sw)
}

// save records w in the database: the seeding finished.
func (s *seeded) save(ctx context.Context, dbURL string, w *world) error {
	sw := savedWorld{Run: w.run, Apps: w.appSlugs, Installs: w.installs, SeededAt: time.Now()}
	for _, o := range w.orgs {
		sw.Orgs = append(sw.Orgs, o.slug)
	}
	raw, err := json.Marshal(sw)
	if err != nil {
		return err
	}
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, `CREATE TABLE bench_world (world jsonb NOT NULL); INSERT INTO bench_world VALUES ('`+strings.ReplaceAll(string(raw), "'", "''")+`')`)
	s.release()
	return err
}

func (s *seeded) release() {
	if s.lock != nil {
		s.lock.Close(context.Background()) // ends the session: the advisory lock goes with it
		s.lock = nil
	}
}

// world is the saved world with a fresh sign-in of its partner.
func (s *seeded) world(ctx context.Context, base string, hc *http.Client) (*world, error) {
	sw := s.saved
	partner := &client{base: base, hc: hc}
	if err := partner.signIn(ctx, "partner-"+sw.Run+"@bench.example"); err != nil {
		return nil, fmt.Errorf("signing the seeded partner in: %w", err)
	}
	w := &world{run: sw.Run, appSlugs: sw.Apps, installs: sw.Installs, partnerToken: partner.token}
	for _, slug := range sw.Orgs {
		w.orgs = append(w.orgs, custOrg{slug: slug, fanout: len(sw.Apps)})
	}
	return w, nil
}
