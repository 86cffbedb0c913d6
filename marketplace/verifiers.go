package marketplace

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The checks of what outside callers prove themselves with, pure functions
// so that their fuzz targets (verifiers_fuzz_test.go) reach them as the
// services do.

// pkceMatches reports whether verifier is an RFC 7636 code_verifier (§4.1:
// 43 to 128 characters of A-Z a-z 0-9 - . _ ~) whose S256 transform is
// challenge.
func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for i := 0; i < len(verifier); i++ {
		switch c := verifier[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// appJWTMaxLife is the longest an app JWT may live, and the clock skew
// allowed around it.
const (
	appJWTMaxLife = 10 * time.Minute
	appJWTLeeway  = 30 * time.Second
)

var errAppJWTLife = errors.New("app JWTs need iat and may last at most ten minutes")

// parseAppJWT checks a JWT an app signed: issued by clientID, signed with
// HS256, RS256 or EdDSA under the key key returns for the algorithm, with
// exp and iat, and short-lived: neither its life nor what is left of it
// exceeds ten minutes. It returns errAppJWTLife for a valid token that
// lives too long, another error for any other refusal.
func parseAppJWT(raw, clientID string, key func(alg string) (any, error), now func() time.Time) (*jwt.RegisteredClaims, error) {
	claims := jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) { return key(t.Method.Alg()) },
		jwt.WithValidMethods([]string{"HS256", "RS256", "EdDSA"}), jwt.WithIssuer(clientID), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithTimeFunc(now), jwt.WithLeeway(appJWTLeeway))
	if err != nil {
		return nil, err
	}
	if claims.IssuedAt == nil || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > appJWTMaxLife ||
		claims.ExpiresAt.Sub(now()) > appJWTMaxLife+appJWTLeeway {
		return nil, errAppJWTLife
	}
	return &claims, nil
}
