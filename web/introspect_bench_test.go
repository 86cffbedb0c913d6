package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/cmd/platform/apptest"
	"github.com/plugboard/plugboard/marketplace"
	"github.com/plugboard/plugboard/sdk/plugboard"
)

// BenchmarkIntrospect measures introspection's one indexed lookup with
// 100,000 other live tokens in the table: the service call alone, and
// POST /oauth/introspect over loopback (with the service token's own
// lookup). Run: go test ./web/ -run '^$' -bench Introspect -benchmem
func BenchmarkIntrospect(b *testing.B) {
	p := apptest.Start(b)
	op := operator(b, p, "ops@plugboard.example")
	hostToken := decode[plugboard.ServiceToken](b, op.do("POST", "/api/0/service-tokens/", map[string]any{"name": "Host"}), 201).Token
	team := signUp(b, p, "team@acme.example")
	team.do("POST", "/api/0/organizations/", map[string]string{"name": "Acme"}).ok(b, 201, nil)
	app := decode[plugboard.App](b, team.do("POST", "/api/0/organizations/acme/apps/", map[string]any{"name": "Bot", "kind": "internal", "scopes": []string{"org:read"}}), 201)
	if err := p.App.DB.Exec(`INSERT INTO tokens (installation_id, family, kind, token_hash, scopes, created_at, expires_at)
		SELECT i.id, gen_random_uuid(), 'access', sha256(('pbi_seed_' || g)::bytea), '["org:read"]', now(), now() + interval '8 hours'
		FROM generate_series(1, 100000) g, installations i WHERE i.uuid = ?`, app.Installation.UUID).Error; err != nil {
		b.Fatal(err)
	}
	p.App.DB.Exec("ANALYZE tokens")
	svc := p.App.Marketplace.Introspection
	host := marketplace.Actor{Service: &marketplace.ServiceToken{ID: 1}}
	ctx := b.Context()
	for _, c := range []struct {
		name, token string
		active      bool
	}{{"active", app.Token, true}, {"unknown", "pbi_unknown", false}} {
		b.Run("service/"+c.name, func(b *testing.B) {
			for b.Loop() {
				info, err := svc.Introspect(ctx, host, c.token)
				if err != nil || info.Active != c.active {
					b.Fatalf("%+v %v", info, err)
				}
			}
		})
	}
	body := url.Values{"token": {app.Token}}.Encode()
	hc := &http.Client{}
	b.Run("http/active", func(b *testing.B) {
		for b.Loop() {
			req, _ := http.NewRequest("POST", p.URL+"/oauth/introspect", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+hostToken)
			res, err := hc.Do(req)
			if err != nil || res.StatusCode != 200 {
				b.Fatalf("%v %v", res, err)
			}
			res.Body.Close()
		}
	})
}
