package web

import (
	"encoding/json"
	"strings"
	"testing"
)

// BenchmarkCheckJSONText is what the door costs a JSON body of about
// 1 KiB: the common body (UTF-8, no escapes) and one with escapes, which is
// read token by token.
func BenchmarkCheckJSONText(b *testing.B) {
	plain := []byte(`{"type": "issue.created", "data": {"title": "` + strings.Repeat("Database on fire. ", 50) + `", "n": 1}}`)
	escaped := []byte(`{"type": "issue.created", "data": {"title": "` + strings.Repeat(`caf\u00e9 \"x\" `, 60) + `", "n": 1}}`)
	for name, body := range map[string][]byte{"plain": plain, "escaped": escaped} {
		if !json.Valid(body) {
			b.Fatalf("%s: not JSON", name)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := checkJSONText(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
