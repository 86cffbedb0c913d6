package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/plugboard/plugboard/app/secret"
)

// SecretPrefix starts every signing secret (Standard Webhooks).
const SecretPrefix = "whsec_"

// NewSecret makes a Standard Webhooks signing secret: SecretPrefix and 24
// random bytes in standard base64, which every Standard Webhooks library
// decodes.
func NewSecret() string {
	return SecretPrefix + base64.StdEncoding.EncodeToString(secret.Bytes(24))
}

// Signer signs payloads with one or more secrets (several while a secret
// rotates), per the Standard Webhooks specification.
type Signer struct{ keys [][]byte }

// NewSigner decodes secrets made by NewSecret (the prefix is optional).
func NewSigner(secrets []string) (*Signer, error) {
	s := &Signer{}
	for _, sec := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sec, SecretPrefix))
		if err != nil {
			return nil, fmt.Errorf("decoding signing secret: %w", err)
		}
		s.keys = append(s.keys, key)
	}
	if len(s.keys) == 0 {
		return nil, fmt.Errorf("no signing secret")
	}
	return s, nil
}

// Sign returns the webhook-signature header value for id, unix timestamp and
// body: "v1,<base64>" per secret, space-separated.
func (s *Signer) Sign(id string, ts int64, body []byte) string {
	var b strings.Builder
	for i, key := range s.keys {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id))
		m.Write([]byte{'.'})
		m.Write([]byte(strconv.FormatInt(ts, 10)))
		m.Write([]byte{'.'})
		m.Write(body)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	return b.String()
}
