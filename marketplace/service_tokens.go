package marketplace

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/plugboard/plugboard/app/fault"
	"github.com/plugboard/plugboard/app/secret"
	"gorm.io/gorm"
)

// ServiceToken lets the host product publish events to any organization.
type ServiceToken struct {
	ID          int64
	Name        string
	TokenHash   []byte
	TokenSuffix string
	CreatedBy   *int64
	CreatedAt   time.Time
	LastUsedAt  *time.Time
	RevokedAt   *time.Time
}

// PrefixService starts host service tokens.
const PrefixService = "pbh_"

// CreateServiceToken makes a host service token; operators only.
func (s *ServiceTokens) CreateServiceToken(ctx context.Context, a Actor, name string) (*ServiceToken, string, error) {
	if err := requireOperator(a); err != nil {
		return nil, "", err
	}
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return nil, "", fault.Field("name", "must be 1 to 100 characters")
	}
	token := secret.Token(PrefixService, 32)
	t := &ServiceToken{Name: name, TokenHash: secret.Hash(token), TokenSuffix: token[len(token)-4:], CreatedBy: &a.User.ID, CreatedAt: s.now()}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(t).Error; err != nil {
			return fmt.Errorf("creating service token: %w", err)
		}
		return s.audit(tx, a, nil, "service_token.create", "service_token", idStr(t.ID), name, nil)
	})
	return t, token, err
}

// ListServiceTokens lists live host service tokens; operators only.
func (s *ServiceTokens) ListServiceTokens(ctx context.Context, a Actor) ([]ServiceToken, error) {
	if err := requireOperator(a); err != nil {
		return nil, err
	}
	var out []ServiceToken
	if err := s.db.WithContext(ctx).Where("revoked_at IS NULL").Order("id DESC").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("listing service tokens: %w", err)
	}
	return out, nil
}

// RevokeServiceToken revokes one; operators only.
func (s *ServiceTokens) RevokeServiceToken(ctx context.Context, a Actor, id string) error {
	if err := requireOperator(a); err != nil {
		return err
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return fault.NotFound("service token")
	}
	res := s.db.WithContext(ctx).Model(&ServiceToken{}).Where("id = ? AND revoked_at IS NULL", n).Update("revoked_at", s.now())
	if res.Error != nil {
		return fmt.Errorf("revoking service token: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return fault.NotFound("service token")
	}
	s.cache.clear()
	return s.audit(s.db.WithContext(ctx), a, nil, "service_token.revoke", "service_token", id, "", nil)
}

// serviceTokenTTL is how long a process trusts a service token it found
// without asking PostgreSQL again: the host publishes thousands of events a
// second with one token. Revoking clears this process's cache at once;
// another process stops accepting the token within the TTL.
const serviceTokenTTL = 10 * time.Second

// serviceTokenCache keeps the live service tokens found recently, by hash.
type serviceTokenCache struct {
	mu sync.Mutex
	m  map[string]cachedServiceToken
}

type cachedServiceToken struct {
	t  ServiceToken
	at time.Time
}

func (c *serviceTokenCache) get(hash []byte, now time.Time) (ServiceToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[string(hash)]
	if !ok || now.Sub(e.at) > serviceTokenTTL || now.Before(e.at) {
		return ServiceToken{}, false
	}
	return e.t, true
}

func (c *serviceTokenCache) put(hash []byte, t ServiceToken, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) > 1000 {
		c.m = map[string]cachedServiceToken{}
	}
	c.m[string(hash)] = cachedServiceToken{t: t, at: now}
}

func (c *serviceTokenCache) clear() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}

func (s *ServiceTokens) authenticateServiceToken(ctx context.Context, token string) (Actor, error) {
	hash := secret.Hash(token)
	now := s.now()
	if t, ok := s.cache.get(hash, now); ok {
		return Actor{Service: &t}, nil
	}
	var t ServiceToken
	err := s.db.WithContext(ctx).Where("token_hash = ? AND revoked_at IS NULL", hash).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Actor{}, errBadToken
	}
	if err != nil {
		return Actor{}, fmt.Errorf("finding service token: %w", err)
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > time.Minute {
		s.db.WithContext(ctx).Model(&ServiceToken{}).Where("id = ?", t.ID).Update("last_used_at", now)
		t.LastUsedAt = &now
	}
	s.cache.put(hash, t, now)
	return Actor{Service: &t}, nil
}
