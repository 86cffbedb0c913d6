package marketplace

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// rfc7636Verifier is RFC 7636 §4.1's code_verifier, the reference.
var rfc7636Verifier = regexp.MustCompile(`^[A-Za-z0-9\-._~]{43,128}$`)

func s256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// FuzzPKCE checks the code_verifier check against RFC 7636: a verifier
// passes exactly when it has the RFC's form and its S256 transform is the
// challenge.
func FuzzPKCE(f *testing.F) {
	good := strings.Repeat("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", 1)
	for _, s := range [][2]string{{good, s256(good)}, {good, ""}, {"short", s256("short")}, {strings.Repeat("a", 128), s256(strings.Repeat("a", 128))},
		{strings.Repeat("a", 129), s256(strings.Repeat("a", 129))}, {strings.Repeat("a", 42), s256(strings.Repeat("a", 42))},
		{good + "+", s256(good + "+")}, {good, s256(good) + "="}, {"", s256("")}, {good + "\x00", s256(good + "\x00")}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, verifier, challenge string) {
		want := rfc7636Verifier.MatchString(verifier) && challenge == s256(verifier)
		if got := pkceMatches(verifier, challenge); got != want {
			t.Fatalf("pkceMatches(%q, %q) = %v, RFC 7636 says %v", verifier, challenge, got, want)
		}
		if got, want := pkceMatches(verifier, s256(verifier)), rfc7636Verifier.MatchString(verifier); got != want {
			t.Fatalf("pkceMatches(%q, its own S256) = %v, want %v", verifier, got, want)
		}
	})
}

// FuzzAppJWT feeds tokens to the app JWT check, which accepts HS256 under
// the client secret and EdDSA under the registered key. Whatever it
// accepts must pass a check written from the JWT and JWS RFCs: the
// signature verifies over the first two parts under the algorithm's key,
// iss is the client id, and exp and iat make a life of at most ten
// minutes, not expired and not from the future (both within the leeway).
func FuzzAppJWT(f *testing.F) {
	const clientID = "pbc_fuzz"
	secret := []byte("pbcs_fuzz-secret-0123456789")
	pub, priv, _ := ed25519.GenerateKey(strings.NewReader(strings.Repeat("k", 64)))
	now := time.Unix(1767366245, 0)
	clock := func() time.Time { return now }
	key := func(alg string) (any, error) {
		switch alg {
		case "HS256":
			return secret, nil
		case "EdDSA":
			return pub, nil
		}
		return nil, errors.New("no key")
	}
	claims := func(iss string, iat, exp time.Duration) jwt.MapClaims {
		return jwt.MapClaims{"iss": iss, "iat": now.Add(iat).Unix(), "exp": now.Add(exp).Unix()}
	}
	hs := func(c jwt.MapClaims) string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
		return s
	}
	ed := func(c jwt.MapClaims) string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(priv)
		return s
	}
	for _, s := range []string{
		hs(claims(clientID, 0, 5*time.Minute)), ed(claims(clientID, -time.Minute, 5*time.Minute)),
		hs(claims(clientID, 0, time.Hour)), hs(claims("pbc_other", 0, time.Minute)), hs(jwt.MapClaims{"iss": clientID, "exp": now.Add(time.Minute).Unix()}),
		hs(claims(clientID, -20*time.Minute, -15*time.Minute)), hs(claims(clientID, time.Hour, time.Hour+time.Minute)),
		"eyJhbGciOiJub25lIn0.eyJpc3MiOiJwYmNfZnV6eiJ9.", "a.b.c", "", "...",
		strings.TrimSuffix(hs(claims(clientID, 0, time.Minute)), "A") + "B",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := parseAppJWT(raw, clientID, key, clock)
		if err != nil {
			return
		}
		parts := strings.Split(raw, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %q: not three parts", raw)
		}
		var head struct {
			Alg string `json:"alg"`
		}
		hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
		sig, err2 := base64.RawURLEncoding.DecodeString(parts[2])
		if err1 != nil || err2 != nil || json.Unmarshal(hb, &head) != nil {
			t.Fatalf("accepted %q: header or signature do not decode", raw)
		}
		input := []byte(parts[0] + "." + parts[1])
		switch head.Alg {
		case "HS256":
			m := hmac.New(sha256.New, secret)
			m.Write(input)
			if !hmac.Equal(m.Sum(nil), sig) {
				t.Fatalf("accepted %q: HS256 signature does not verify", raw)
			}
		case "EdDSA":
			if !ed25519.Verify(pub, input, sig) {
				t.Fatalf("accepted %q: EdDSA signature does not verify", raw)
			}
		default:
			t.Fatalf("accepted %q with alg %q", raw, head.Alg)
		}
		if got.Issuer != clientID || got.IssuedAt == nil || got.ExpiresAt == nil {
			t.Fatalf("accepted %q: claims %+v", raw, got)
		}
		exp, iat := got.ExpiresAt.Time, got.IssuedAt.Time
		if exp.Sub(iat) > appJWTMaxLife || !exp.After(now.Add(-appJWTLeeway)) || iat.After(now.Add(appJWTLeeway)) || exp.Sub(now) > appJWTMaxLife+appJWTLeeway {
			t.Fatalf("accepted %q: iat %v exp %v at %v", raw, iat, exp, now)
		}
	})
}
