// Package secret holds the small cryptographic pieces Plugboard's domain
// packages share: an AES-GCM box that encrypts values at rest under a key
// derived from PLUGBOARD_SECRET_KEY, random prefixed tokens, and their hashes.
// It imports nothing of Plugboard; marketplace, webhooks and app import it.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// Derive returns a 32-byte key for one purpose ("jwt", "webhook-secrets")
// from the master key, so no two uses share key material.
func Derive(master, purpose string) []byte {
	m := hmac.New(sha256.New, []byte(master))
	m.Write([]byte("plugboard:" + purpose))
	return m.Sum(nil)
}

// Box encrypts and decrypts small values with AES-256-GCM.
type Box struct{ aead cipher.AEAD }

// NewBox returns a box keyed for purpose under master.
func NewBox(master, purpose string) (*Box, error) {
	block, err := aes.NewCipher(Derive(master, purpose))
	if err != nil {
		return nil, fmt.Errorf("creating cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("creating GCM: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext; the nonce is prepended.
func (b *Box) Seal(plaintext string) []byte {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	return b.aead.Seal(nonce, nonce, []byte(plaintext), nil)
}

// ErrOpen means a sealed value could not be decrypted (wrong key or tampered).
var ErrOpen = errors.New("secret: cannot decrypt value")

// Open decrypts what Seal produced.
func (b *Box) Open(sealed []byte) (string, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n {
		return "", ErrOpen
	}
	out, err := b.aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return "", ErrOpen
	}
	return string(out), nil
}

// Token returns prefix followed by n random bytes in URL-safe base64.
func Token(prefix string, n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		panic(err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(buf)
}

// HexToken returns n random bytes as lower-case hex.
func HexToken(n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		panic(err)
	}
	return hex.EncodeToString(buf)
}

// Hash is the SHA-256 of a high-entropy token, the form tokens are stored in.
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Bytes returns n random bytes.
func Bytes(n int) []byte {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		panic(err)
	}
	return buf
}
