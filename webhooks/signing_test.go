package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestSignMatchesReference checks the pooled MACs against a plain HMAC of
// "id.timestamp.body" per key, also when signatures are made one after
// another and concurrently.
func TestSignMatchesReference(t *testing.T) {
	a, b := NewSecret(), NewSecret()
	reference := func(secrets []string, id string, ts int64, body []byte) string {
		var sigs []string
		for _, sec := range secrets {
			key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(sec, SecretPrefix))
			m := hmac.New(sha256.New, key)
			m.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "."))
			m.Write(body)
			sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
		}
		return strings.Join(sigs, " ")
	}
	tests := []struct {
		name    string
		secrets []string
		id      string
		ts      int64
		body    []byte
	}{
		{"one key", []string{a}, "msg_1", 1700000000, []byte(`{"x":1}`)},
		{"no body", []string{a}, "sync_1", 1, nil},
		{"rotating", []string{a, b}, "9a5f1a43-0f5c-4a59-8b43-8d2b4a0f6c01", 1764748800, []byte(strings.Repeat("y", 5000))},
		{"long id", []string{b}, strings.Repeat("i", 300), -5, []byte("z")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSigner(tt.secrets)
			if err != nil {
				t.Fatal(err)
			}
			want := reference(tt.secrets, tt.id, tt.ts, tt.body)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for range 20 {
						if got := s.Sign(tt.id, tt.ts, tt.body); got != want {
							t.Errorf("Sign: %q, want %q", got, want)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
