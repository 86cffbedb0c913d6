package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"

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
type Signer struct {
	keys [][]byte
	// macs holds a *mac per key, reset between signatures: hmac.New
	// hashes the key into two fresh SHA-256 states every time, and
	// signing is done for every attempt.
	macs []sync.Pool
}

// mac is a key's HMAC and a buffer for what is signed besides the body.
type mac struct {
	h   hash.Hash
	buf []byte
}

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
	s.macs = make([]sync.Pool, len(s.keys))
	for i, key := range s.keys {
		s.macs[i].New = func() any { return &mac{h: hmac.New(sha256.New, key), buf: make([]byte, 0, 128)} }
	}
	return s, nil
}

// Sign returns the webhook-signature header value for id, unix timestamp and
// body: "v1,<base64>" per secret, space-separated.
func (s *Signer) Sign(id string, ts int64, body []byte) string {
	const sigLen = 3 + 44 // "v1," and a SHA-256 in base64
	out := make([]byte, 0, len(s.keys)*(sigLen+1))
	for i := range s.keys {
		m := s.macs[i].Get().(*mac)
		m.h.Reset()
		m.buf = append(m.buf[:0], id...)
		m.buf = append(m.buf, '.')
		m.buf = strconv.AppendInt(m.buf, ts, 10)
		m.buf = append(m.buf, '.')
		m.h.Write(m.buf)
		m.h.Write(body)
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, "v1,"...)
		m.buf = m.h.Sum(m.buf[:0])
		out = base64.StdEncoding.AppendEncode(out, m.buf)
		s.macs[i].Put(m)
	}
	return string(out)
}
