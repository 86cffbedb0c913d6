package marketplace

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/secret"
)

// Token prefixes say what a bearer token is.
const (
	PrefixAPIToken = "pbu_"
	PrefixSession  = "pbs_"
)

// The length a password must have, in bytes (bcrypt reads at most 72).
// Sign-up checks it and the sign-up form's hint shows it.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 72
)

// NewUser is the input of SignUp.
type NewUser struct {
	Email      string
	Name       string
	Password   string
	IsOperator bool
}

func (n *NewUser) validate() error {
	f := fault.Fields{}
	n.Email = strings.TrimSpace(n.Email)
	n.Name = strings.TrimSpace(n.Name)
	addr, err := mail.ParseAddress(n.Email)
	f.Check(n.Email == "", "email", "is required")
	f.Check(err != nil || addr.Address != n.Email, "email", "must be an email address such as ada@example.com")
	f.Check(utf8.RuneCountInString(n.Name) > 100, "name", "must be at most 100 characters")
	f.Check(len(n.Password) < MinPasswordLength, "password", fmt.Sprintf("must be at least %d characters", MinPasswordLength))
	f.Check(len(n.Password) > MaxPasswordLength, "password", fmt.Sprintf("must be at most %d characters", MaxPasswordLength))
	return f.Err()
}

// SignUp creates a user. Operators are made only from the command line.
func (s *Accounts) SignUp(ctx context.Context, a Actor, n NewUser) (*User, error) {
	if err := n.validate(); err != nil {
		return nil, err
	}
	hash, err := s.passwords.hash(ctx, n.Password)
	if err != nil {
		return nil, err
	}
	u := &User{Email: n.Email, Name: n.Name, PasswordHash: string(hash), IsOperator: n.IsOperator, CreatedAt: s.now(), UpdatedAt: s.now()}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(u).Error; err != nil {
			return dbErr(err, "user", "email")
		}
		actor := a
		if actor.User == nil {
			actor.User = u
		}
		return s.audit(tx, actor, nil, "user.create", "user", idStr(u.ID), u.Email, nil)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// SignIn is a successful sign-in: a session (for the cookie) and a JWT.
type SignIn struct {
	User         *User
	SessionToken string
	SessionEnds  time.Time
	JWT          string
	JWTExpires   time.Time
}

// SignIn checks a password and opens a session.
func (s *Accounts) SignIn(ctx context.Context, a Actor, email, password, userAgent string) (*SignIn, error) {
	bad := fault.Unauthorized(fault.InvalidCredentials, "The email or password is wrong.")
	f := fault.Fields{}
	f.Check(strings.TrimSpace(email) == "", "email", "is required")
	f.Check(password == "", "password", "is required")
	if err := f.Err(); err != nil {
		return nil, err
	}
	var u User
	var hash []byte // nil for an unknown email: checked against the dummy, in the same time
	err := s.db.WithContext(ctx).Where("lower(email) = lower(?)", strings.TrimSpace(email)).First(&u).Error
	switch {
	case err == nil:
		hash = []byte(u.PasswordHash)
	case !errors.Is(err, gorm.ErrRecordNotFound):
		return nil, fmt.Errorf("finding user: %w", err)
	}
	if ok, err := s.passwords.check(ctx, hash, password); err != nil || !ok {
		if err != nil {
			return nil, err
		}
		return nil, bad
	}
	token := secret.Token(PrefixSession, 32)
	sess := Session{UserID: u.ID, TokenHash: secret.Hash(token), IP: a.IP, UserAgent: truncate(userAgent, 300),
		CreatedAt: s.now(), ExpiresAt: s.now().Add(s.opts.SessionTTL)}
	if err := s.db.WithContext(ctx).Create(&sess).Error; err != nil {
		return nil, fmt.Errorf("opening session: %w", err)
	}
	exp := s.now().Add(s.opts.TokenTTL)
	if exp.After(sess.ExpiresAt) {
		exp = sess.ExpiresAt
	}
	claims := jwt.MapClaims{"sub": idStr(u.ID), "sid": idStr(sess.ID), "iss": s.opts.Issuer, "aud": "plugboard-api",
		"iat": s.now().Unix(), "exp": exp.Unix()}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.jwtKey)
	if err != nil {
		return nil, fmt.Errorf("signing token: %w", err)
	}
	return &SignIn{User: &u, SessionToken: token, SessionEnds: sess.ExpiresAt, JWT: signed, JWTExpires: exp}, nil
}

// PasswordStats says how many password checks ran at once, at most, and
// how many were refused for want of a slot.
func (s *Accounts) PasswordStats() PasswordStats { return s.passwords.stats() }

// SignOut ends the actor's session; its cookie and JWTs stop working.
func (s *Accounts) SignOut(ctx context.Context, a Actor) error {
	if err := requireUser(a); err != nil {
		return err
	}
	if a.SessionID == 0 {
		return fault.Invalid(fault.NoSession, "Sign-out ends a session; API tokens are revoked with DELETE /api/0/api-tokens/{token_id}/.", nil)
	}
	err := s.db.WithContext(ctx).Delete(&Session{}, a.SessionID).Error
	s.decisions.forget()
	if err != nil {
		return fmt.Errorf("ending session: %w", err)
	}
	return nil
}

var errBadToken = fault.Unauthorized(fault.InvalidToken, "The token is invalid, expired or revoked.")

// AuthenticateBearer resolves an Authorization: Bearer value: a personal API
// token (pbu_…) or a sign-in JWT.
func (s *Accounts) AuthenticateBearer(ctx context.Context, token string) (Actor, error) {
	switch {
	case strings.HasPrefix(token, PrefixAPIToken):
		return s.authenticateAPIToken(ctx, token)
	case strings.HasPrefix(token, PrefixAccess):
		return s.tokens.authenticateInstallationToken(ctx, token)
	case strings.HasPrefix(token, PrefixService):
		return s.hosts.authenticateServiceToken(ctx, token)
	case strings.Count(token, ".") == 2:
		if uid, sid, ok := s.decisions.token(token, s.now()); ok {
			return s.sessionActor(ctx, uid, sid)
		}
		// A user's sign-in JWT names the platform as issuer; an app's names
		// its client id.
		claims := jwt.MapClaims{}
		if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
			return Actor{}, errBadToken
		}
		if iss, _ := claims["iss"].(string); iss != "" && iss != s.opts.Issuer {
			return s.oauth.authenticateAppJWT(ctx, token, iss)
		}
		return s.authenticateJWT(ctx, token)
	}
	return Actor{}, errBadToken
}

// AuthenticateSession resolves a session cookie.
func (s *Accounts) AuthenticateSession(ctx context.Context, token string) (Actor, error) {
	var sess Session
	err := s.db.WithContext(ctx).Where("token_hash = ? AND expires_at > ?", secret.Hash(token), s.now()).First(&sess).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Actor{}, errBadToken
	}
	if err != nil {
		return Actor{}, fmt.Errorf("finding session: %w", err)
	}
	return s.actorFor(ctx, sess.UserID, sess.ID)
}

func (s *Accounts) authenticateJWT(ctx context.Context, raw string) (Actor, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return s.jwtKey, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(s.opts.Issuer), jwt.WithAudience("plugboard-api"),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(s.now))
	if err != nil {
		return Actor{}, errBadToken
	}
	uid, err1 := strconv.ParseInt(fmt.Sprint(claims["sub"]), 10, 64)
	sid, err2 := strconv.ParseInt(fmt.Sprint(claims["sid"]), 10, 64)
	exp, err3 := claims.GetExpirationTime()
	if err1 != nil || err2 != nil || err3 != nil || exp == nil {
		return Actor{}, errBadToken
	}
	s.decisions.putToken(raw, uid, sid, exp.Time)
	return s.sessionActor(ctx, uid, sid)
}

// sessionActor is the user of session sid, which a verified sign-in JWT
// names with its user uid: from the access cache, or checked in SQL (the
// session may have ended since the token was issued).
func (s *Accounts) sessionActor(ctx context.Context, uid, sid int64) (Actor, error) {
	now := s.now()
	if u, ok := s.decisions.session(sid, uid, now); ok {
		return Actor{User: &u, SessionID: sid}, nil
	}
	gen := s.decisions.gen.Load()
	var sess Session
	err := s.db.WithContext(ctx).Where("id = ? AND user_id = ? AND expires_at > ?", sid, uid, now).Take(&sess).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Actor{}, errBadToken // signed out
	}
	if err != nil {
		return Actor{}, fmt.Errorf("checking session: %w", err)
	}
	a, err := s.actorFor(ctx, uid, sid)
	if err == nil {
		s.decisions.putSession(sid, *a.User, sess.ExpiresAt, gen)
	}
	return a, err
}

func (s *Accounts) authenticateAPIToken(ctx context.Context, token string) (Actor, error) {
	var t APIToken
	err := s.db.WithContext(ctx).Where("token_hash = ?", secret.Hash(token)).First(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Actor{}, errBadToken
	}
	if err != nil {
		return Actor{}, fmt.Errorf("finding API token: %w", err)
	}
	if t.ExpiresAt != nil && !t.ExpiresAt.After(s.now()) {
		return Actor{}, errBadToken
	}
	if t.LastUsedAt == nil || s.now().Sub(*t.LastUsedAt) > time.Minute {
		s.db.WithContext(ctx).Model(&APIToken{}).Where("id = ?", t.ID).Update("last_used_at", s.now())
	}
	return s.actorFor(ctx, t.UserID, 0)
}

func (s *Accounts) actorFor(ctx context.Context, userID, sessionID int64) (Actor, error) {
	var u User
	if err := s.db.WithContext(ctx).First(&u, userID).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return Actor{}, errBadToken
		}
		return Actor{}, fmt.Errorf("loading user: %w", err)
	}
	return Actor{User: &u, SessionID: sessionID}, nil
}

// NewAPIToken is a created token; Token is shown once.
type NewAPIToken struct {
	APIToken
	Token string
}

// CreateAPIToken makes a personal API token for the actor.
func (s *Accounts) CreateAPIToken(ctx context.Context, a Actor, name string, expiresAt *time.Time) (*NewAPIToken, error) {
	if err := requireUser(a); err != nil {
		return nil, err
	}
	f := fault.Fields{}
	name = strings.TrimSpace(name)
	f.Check(name == "", "name", "is required")
	f.Check(utf8.RuneCountInString(name) > 100, "name", "must be at most 100 characters")
	f.Check(expiresAt != nil && !expiresAt.After(s.now()), "expiresAt", "must be in the future")
	if err := f.Err(); err != nil {
		return nil, err
	}
	token := secret.Token(PrefixAPIToken, 32)
	t := NewAPIToken{Token: token, APIToken: APIToken{UserID: a.User.ID, Name: name, TokenHash: secret.Hash(token),
		TokenSuffix: token[len(token)-4:], CreatedAt: s.now(), ExpiresAt: expiresAt}}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(&t.APIToken).Error; err != nil {
			return fmt.Errorf("creating API token: %w", err)
		}
		return s.audit(tx, a, nil, "api_token.create", "api_token", idStr(t.ID), name, nil)
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// ListAPITokens returns the actor's tokens, newest first.
func (s *Accounts) ListAPITokens(ctx context.Context, a Actor) ([]APIToken, error) {
	if err := requireUser(a); err != nil {
		return nil, err
	}
	var out []APIToken
	if err := s.db.WithContext(ctx).Where("user_id = ?", a.User.ID).Order("id DESC").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("listing API tokens: %w", err)
	}
	return out, nil
}

// DeleteAPIToken revokes one of the actor's tokens.
func (s *Accounts) DeleteAPIToken(ctx context.Context, a Actor, id string) error {
	if err := requireUser(a); err != nil {
		return err
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return fault.NotFound("API token")
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Where("id = ? AND user_id = ?", n, a.User.ID).Delete(&APIToken{})
		if res.Error != nil {
			return fmt.Errorf("deleting API token: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return fault.NotFound("API token")
		}
		return s.audit(tx, a, nil, "api_token.delete", "api_token", id, "", nil)
	})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// CSRFToken is the token forms of a signed-in session carry.
func (s *Accounts) CSRFToken(a Actor) string {
	m := hmac.New(sha256.New, s.jwtKey)
	fmt.Fprintf(m, "csrf:%d", a.SessionID)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckCSRF reports whether token is the session's CSRF token.
func (s *Accounts) CheckCSRF(a Actor, token string) bool {
	return a.SessionID != 0 && hmac.Equal([]byte(token), []byte(s.CSRFToken(a)))
}

// Me is the signed-in user.
func (s *Accounts) Me(a Actor) (*User, error) {
	if err := requireUser(a); err != nil {
		return nil, err
	}
	return a.User, nil
}
