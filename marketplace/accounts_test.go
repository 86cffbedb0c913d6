package marketplace_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plugboard/plugboard/marketplace"
)

func TestSignUpValidation(t *testing.T) {
	e := newTestServices(t)
	tests := []struct {
		name   string
		in     marketplace.NewUser
		fields []string // nil: signed up
	}{
		{"valid", marketplace.NewUser{Email: "ada@example.com", Name: "Ada", Password: password}, nil},
		{"trimmed email and name", marketplace.NewUser{Email: "  bob@example.com ", Name: "  Bob ", Password: password}, nil},
		{"no email", marketplace.NewUser{Password: password}, []string{"email"}},
		{"not an email", marketplace.NewUser{Email: "ada", Password: password}, []string{"email"}},
		{"display name form", marketplace.NewUser{Email: "Ada <ada2@example.com>", Password: password}, []string{"email"}},
		{"name too long", marketplace.NewUser{Email: "c@example.com", Name: strings.Repeat("n", 101), Password: password}, []string{"name"}},
		{"password too short", marketplace.NewUser{Email: "d@example.com", Password: "1234567"}, []string{"password"}},
		{"password too long", marketplace.NewUser{Email: "e@example.com", Password: strings.Repeat("p", 73)}, []string{"password"}},
		{"everything wrong", marketplace.NewUser{Email: "x", Name: strings.Repeat("n", 101), Password: "short"}, []string{"email", "name", "password"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			before := e.count("users", "")
			u, err := e.Accounts.SignUp(e.ctx, marketplace.Anonymous, tt.in)
			if tt.fields != nil {
				wantFields(t, err, tt.fields...)
				wantCode(t, err, "invalid_input")
				if n := e.count("users", ""); n != before {
					t.Errorf("users = %d after a refused sign-up, want %d", n, before)
				}
				return
			}
			wantCode(t, err, "")
			if diff := cmp.Diff(strings.TrimSpace(tt.in.Email), u.Email); diff != "" {
				t.Errorf("email (-want +got):\n%s", diff)
			}
			if u.Name != strings.TrimSpace(tt.in.Name) || u.IsOperator || u.ID == 0 {
				t.Errorf("user = %+v", u)
			}
			if u.PasswordHash == "" || u.PasswordHash == tt.in.Password {
				t.Errorf("password stored as %q", u.PasswordHash)
			}
			if n := e.count("audit_logs", "action = 'user.create' AND target_id = ? AND actor_label = ?", idStr(u.ID), u.Email); n != 1 {
				t.Errorf("user.create audit entries = %d, want 1", n)
			}
		})
	}
}

func TestSignUpDuplicateEmailConflicts(t *testing.T) {
	e := newTestServices(t)
	e.mustSignUp("ada@example.com")
	for _, email := range []string{"ada@example.com", "ADA@Example.COM", " ada@example.com "} {
		t.Run(email, func(t *testing.T) {
			_, err := e.Accounts.SignUp(e.ctx, marketplace.Anonymous, marketplace.NewUser{Email: email, Password: password})
			wantCode(t, err, "email_taken")
			if diff := cmp.Diff(map[string]string{"email": "is already taken"}, fieldsOf(err)); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
		})
	}
	if n := e.count("users", ""); n != 1 {
		t.Errorf("users = %d, want 1", n)
	}
}

func TestSignIn(t *testing.T) {
	e := newTestServices(t)
	u := e.mustSignUp("ada@example.com")
	tests := []struct {
		name, email, password string
		code                  string
		fields                []string
	}{
		{"right password", "ada@example.com", password, "", nil},
		{"email in another case", "ADA@Example.com", password, "", nil},
		{"wrong password", "ada@example.com", "wrong horse battery", "invalid_credentials", nil},
		{"unknown email", "bob@example.com", password, "invalid_credentials", nil},
		{"no email", " ", password, "invalid_input", []string{"email"}},
		{"no password", "ada@example.com", "", "invalid_input", []string{"password"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			before := e.count("sessions", "")
			in, err := e.Accounts.SignIn(e.ctx, marketplace.Actor{IP: "192.0.2.1"}, tt.email, tt.password, "test-agent")
			wantCode(t, err, tt.code)
			if tt.fields != nil {
				wantFields(t, err, tt.fields...)
			}
			if err != nil {
				if n := e.count("sessions", ""); n != before {
					t.Errorf("sessions = %d after a failed sign-in, want %d", n, before)
				}
				return
			}
			if in.User.ID != u.ID {
				t.Errorf("signed in as user %d, want %d", in.User.ID, u.ID)
			}
			if !strings.HasPrefix(in.SessionToken, marketplace.PrefixSession) || in.JWT == "" {
				t.Errorf("session token %q, JWT %q", in.SessionToken, in.JWT)
			}
			now := e.clock.Now()
			if diff := cmp.Diff(now.Add(14*24*time.Hour), in.SessionEnds); diff != "" {
				t.Errorf("session ends (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(now.Add(time.Hour), in.JWTExpires); diff != "" {
				t.Errorf("JWT expires (-want +got):\n%s", diff)
			}
			if n := e.count("sessions", ""); n != before+1 {
				t.Errorf("sessions = %d, want %d", n, before+1)
			}
			if n := e.count("sessions", "user_id = ? AND ip = '192.0.2.1' AND user_agent = 'test-agent' AND expires_at = ?", u.ID, in.SessionEnds); n == 0 {
				t.Errorf("no session row with the IP, user agent and end of the sign-in")
			}
		})
	}
}

func TestSessionAuthenticateThenSignOutRevokes(t *testing.T) {
	e := newTestServices(t)
	u := e.mustSignUp("ada@example.com")
	in, err := e.Accounts.SignIn(e.ctx, marketplace.Anonymous, u.Email, password, "")
	wantCode(t, err, "")

	byCookie, err := e.Accounts.AuthenticateSession(e.ctx, in.SessionToken)
	wantCode(t, err, "")
	byJWT, err := e.Accounts.AuthenticateBearer(e.ctx, in.JWT)
	wantCode(t, err, "")
	if byCookie.User.ID != u.ID || byJWT.User.ID != u.ID || byCookie.SessionID == 0 || byCookie.SessionID != byJWT.SessionID {
		t.Fatalf("cookie actor %+v, JWT actor %+v: want user %d with one session", byCookie, byJWT, u.ID)
	}

	// Signing out needs a session: an API token's actor has none.
	wantCode(t, e.Accounts.SignOut(e.ctx, as(u)), "no_session")
	wantCode(t, e.Accounts.SignOut(e.ctx, marketplace.Anonymous), "not_authenticated")

	wantCode(t, e.Accounts.SignOut(e.ctx, byJWT), "")
	_, err = e.Accounts.AuthenticateSession(e.ctx, in.SessionToken)
	wantCode(t, err, "invalid_token")
	_, err = e.Accounts.AuthenticateBearer(e.ctx, in.JWT)
	wantCode(t, err, "invalid_token")
	if n := e.count("sessions", "user_id = ?", u.ID); n != 0 {
		t.Errorf("sessions left = %d, want 0", n)
	}
}

func TestSessionAndJWTExpire(t *testing.T) {
	e := newTestServices(t)
	u := e.mustSignUp("ada@example.com")
	in, err := e.Accounts.SignIn(e.ctx, marketplace.Anonymous, u.Email, password, "")
	wantCode(t, err, "")

	e.clock.Advance(time.Hour - time.Second)
	_, err = e.Accounts.AuthenticateBearer(e.ctx, in.JWT)
	wantCode(t, err, "")
	e.clock.Advance(2 * time.Second) // past TokenTTL: the JWT expires, the session lives
	_, err = e.Accounts.AuthenticateBearer(e.ctx, in.JWT)
	wantCode(t, err, "invalid_token")
	_, err = e.Accounts.AuthenticateSession(e.ctx, in.SessionToken)
	wantCode(t, err, "")

	e.clock.Advance(14 * 24 * time.Hour) // past SessionTTL
	_, err = e.Accounts.AuthenticateSession(e.ctx, in.SessionToken)
	wantCode(t, err, "invalid_token")
}

func TestAPITokenLifecycle(t *testing.T) {
	e := newTestServices(t)
	ada := e.mustUser("ada@example.com")
	bob := e.mustUser("bob@example.com")

	_, err := e.Accounts.CreateAPIToken(e.ctx, ada, " ", nil)
	wantFields(t, err, "name")
	_, err = e.Accounts.CreateAPIToken(e.ctx, ada, "past", ptr(e.clock.Now()))
	wantFields(t, err, "expiresAt")
	_, err = e.Accounts.CreateAPIToken(e.ctx, marketplace.Anonymous, "ci", nil)
	wantCode(t, err, "not_authenticated")

	ci, err := e.Accounts.CreateAPIToken(e.ctx, ada, " ci ", nil)
	wantCode(t, err, "")
	cli, err := e.Accounts.CreateAPIToken(e.ctx, ada, "cli", nil)
	wantCode(t, err, "")
	if !strings.HasPrefix(ci.Token, marketplace.PrefixAPIToken) || ci.TokenSuffix != ci.Token[len(ci.Token)-4:] {
		t.Errorf("token %q with suffix %q", ci.Token, ci.TokenSuffix)
	}

	list, err := e.Accounts.ListAPITokens(e.ctx, ada)
	wantCode(t, err, "")
	names := func(ts []marketplace.APIToken) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.Name)
		}
		return out
	}
	if diff := cmp.Diff([]string{"cli", "ci"}, names(list)); diff != "" {
		t.Errorf("tokens, newest first (-want +got):\n%s", diff)
	}
	other, err := e.Accounts.ListAPITokens(e.ctx, bob)
	wantCode(t, err, "")
	if len(other) != 0 {
		t.Errorf("bob sees %v", names(other))
	}

	a := e.mustBearer(ci.Token)
	if a.User == nil || a.User.ID != ada.User.ID || a.SessionID != 0 {
		t.Errorf("token actor = %+v, want ada without a session", a)
	}
	var used marketplace.APIToken
	e.db.First(&used, ci.ID)
	if used.LastUsedAt == nil || !used.LastUsedAt.Equal(e.clock.Now()) {
		t.Errorf("last used at %v, want %v", used.LastUsedAt, e.clock.Now())
	}

	// Only the owner deletes a token.
	wantCode(t, e.Accounts.DeleteAPIToken(e.ctx, bob, idStr(ci.ID)), "not_found")
	wantCode(t, e.Accounts.DeleteAPIToken(e.ctx, ada, "nope"), "not_found")
	wantCode(t, e.Accounts.DeleteAPIToken(e.ctx, ada, idStr(ci.ID)), "")
	_, err = e.Accounts.AuthenticateBearer(e.ctx, ci.Token)
	wantCode(t, err, "invalid_token")
	_, err = e.Accounts.AuthenticateBearer(e.ctx, cli.Token)
	wantCode(t, err, "")
	list, _ = e.Accounts.ListAPITokens(e.ctx, ada)
	if diff := cmp.Diff([]string{"cli"}, names(list)); diff != "" {
		t.Errorf("tokens after delete (-want +got):\n%s", diff)
	}
	for _, action := range []string{"api_token.create", "api_token.delete"} {
		if n := e.count("audit_logs", "action = ? AND actor_label = ?", action, "ada@example.com"); n == 0 {
			t.Errorf("no %s audit entry by ada", action)
		}
	}
}

func TestAPITokenExpires(t *testing.T) {
	e := newTestServices(t)
	ada := e.mustUser("ada@example.com")
	tok, err := e.Accounts.CreateAPIToken(e.ctx, ada, "short", ptr(e.clock.Now().Add(time.Hour)))
	wantCode(t, err, "")

	e.clock.Advance(59 * time.Minute)
	if a := e.mustBearer(tok.Token); a.User.ID != ada.User.ID {
		t.Fatalf("actor %+v", a)
	}
	e.clock.Advance(time.Minute) // expiresAt is not after now: expired
	_, err = e.Accounts.AuthenticateBearer(e.ctx, tok.Token)
	wantCode(t, err, "invalid_token")
}

func TestBearerRejectsGarbage(t *testing.T) {
	e := newTestServices(t)
	for _, tok := range []string{"", "nonsense", "pbu_unknown", "pbi_unknown", "pbh_unknown", "a.b.c"} {
		_, err := e.Accounts.AuthenticateBearer(e.ctx, tok)
		wantCode(t, err, "invalid_token")
	}
}

func TestCSRFToken(t *testing.T) {
	e := newTestServices(t)
	u := e.mustSignUp("ada@example.com")
	sign := func() marketplace.Actor {
		in, err := e.Accounts.SignIn(e.ctx, marketplace.Anonymous, u.Email, password, "")
		wantCode(t, err, "")
		a, err := e.Accounts.AuthenticateSession(e.ctx, in.SessionToken)
		wantCode(t, err, "")
		return a
	}
	one, two := sign(), sign()
	tests := []struct {
		name  string
		actor marketplace.Actor
		token string
		want  bool
	}{
		{"its own token", one, e.Accounts.CSRFToken(one), true},
		{"the same session again", two, e.Accounts.CSRFToken(two), true},
		{"another session's token", one, e.Accounts.CSRFToken(two), false},
		{"empty", one, "", false},
		{"tampered", one, e.Accounts.CSRFToken(one) + "x", false},
		{"no session (API token)", as(u), e.Accounts.CSRFToken(as(u)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.Accounts.CheckCSRF(tt.actor, tt.token); got != tt.want {
				t.Errorf("CheckCSRF = %v, want %v", got, tt.want)
			}
		})
	}
	if e.Accounts.CSRFToken(one) == e.Accounts.CSRFToken(two) {
		t.Error("two sessions share a CSRF token")
	}
}
