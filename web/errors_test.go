package web

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/testenv"
	"github.com/plugboard/plugboard/marketplace"
)

func TestFormFault(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"none", nil, false},
		{"ours", errors.New("db down"), false},
		{"internal fault", &fault.Error{Kind: fault.KindInternal, Message: "x"}, false},
		{"invalid", fault.Field("name", "is required"), true},
		{"conflict", fault.Conflict(fault.LastOwner, "x"), true},
		{"already installed, wrapped", fmt.Errorf("installing: %w",
			fault.Conflict(fault.AlreadyInstalled, "x").With(marketplace.DetailInstallation, &marketplace.Installation{})), true},
		{"forbidden", fault.Forbidden(fault.CSRF, "x"), true},
		{"not found", fault.NotFound("app"), false},
		{"unauthorized", fault.Unauthorized(fault.NotAuthenticated, "x"), false},
	} {
		if got := formFault(tt.err); got != tt.want {
			t.Errorf("%s: formFault = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestPostgresTextRefusalIs400: should text the door lets through still be
// refused by PostgreSQL (a NUL in text, \u0000 in jsonb), the problem is
// the input's: 400 invalid_encoding, not 500.
func TestPostgresTextRefusalIs400(t *testing.T) {
	db := openTestDB(t)
	for _, tt := range []struct{ name, sql, arg string }{
		{"NUL in text (22021)", "SELECT ?::text", "a\x00b"},
		{"\\u0000 in jsonb (22P05)", "SELECT ?::jsonb", `{"a": "\u0000"}`},
	} {
		err := db.Exec(tt.sql, tt.arg).Error
		if err == nil {
			t.Fatalf("%s: PostgreSQL took it", tt.name)
		}
		p := problemFor(fmt.Errorf("creating organization: %w", err))
		if p.Status != 400 || p.Code != fault.InvalidEncoding {
			t.Errorf("%s: %v answered %d %s", tt.name, err, p.Status, p.Code)
		}
	}
}

// TestDependencyDownIs503: errors that say PostgreSQL or Redis cannot be
// reached are 503 unavailable; the errors are the drivers' own.
func TestDependencyDownIs503(t *testing.T) {
	closed := func() string { // a loopback port nothing listens on
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()
	ctx := context.Background()
	_, pgErr := pgx.Connect(ctx, "postgres://postgres@"+closed+"/plugboard?sslmode=disable&connect_timeout=2")
	gormDB, err := gorm.Open(postgres.Open("postgres://postgres@"+closed+"/plugboard?sslmode=disable"), &gorm.Config{Logger: gormlogger.Discard, DisableAutomaticPing: true})
	if err != nil {
		t.Fatal(err)
	}
	gormErr := gormDB.Exec("SELECT 1").Error
	refused := redis.NewClient(&redis.Options{Addr: closed, MaxRetries: -1})
	defer refused.Close()
	closedClient := redis.NewClient(&redis.Options{Addr: closed})
	closedClient.Close()
	for _, tt := range []struct {
		name string
		err  error
		want int
	}{
		{"pgx connect refused", pgErr, 503},
		{"gorm query, connect refused", gormErr, 503},
		{"redis refused", refused.Ping(ctx).Err(), 503},
		{"redis client closed", closedClient.Ping(ctx).Err(), 503},
		{"server shutting down", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, 503},
		{"too many connections", &pgconn.PgError{Code: "53300"}, 503},
		{"a bug of ours", errors.New("nil map"), 500},
		{"a constraint", &pgconn.PgError{Code: "23502"}, 500},
	} {
		if tt.err == nil {
			t.Fatalf("%s: no error", tt.name)
		}
		p := problemFor(fmt.Errorf("doing it: %w", tt.err))
		want := fault.InternalError
		if tt.want == 503 {
			want = fault.Unavailable
		}
		if p.Status != tt.want || p.Code != want {
			t.Errorf("%s: %v answered %d %s, want %d %s", tt.name, tt.err, p.Status, p.Code, tt.want, want)
		}
	}
}

func openTestDB(t *testing.T) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(postgres.Open(testenv.DB(t)), &gorm.Config{Logger: gormlogger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	return db
}
