package webhooks

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"
)

// headersJSON logs headers as a JSON object of lower-case names (sorted)
// to values (repeated ones joined with ", "). Written by hand: the
// reflection of encoding/json on a map was 5% of the process's CPU in the
// throughput bench. Invalid UTF-8 and NUL, which PostgreSQL's jsonb
// refuses, become U+FFFD.
func headersJSON(h http.Header) json.RawMessage {
	var small [24]string
	keys := small[:0]
	size := 2
	for k, v := range h {
		keys = append(keys, k)
		size += len(k) + 6
		for _, x := range v {
			size += len(x) + 2
		}
	}
	slices.SortFunc(keys, compareLower)
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k, true)
		b = append(b, ':')
		if v := h[k]; len(v) == 1 {
			b = appendJSONString(b, v[0], false)
		} else {
			b = appendJSONString(b, strings.Join(v, ", "), false)
		}
	}
	return append(b, '}')
}

// lowerASCII is c in lower case when it is an ASCII capital.
func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// compareLower orders header names as their lower-case forms, without
// making them (sorting by strings.ToLower was most of headersJSON's cost).
func compareLower(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if x, y := lowerASCII(a[i]), lowerASCII(b[i]); x != y {
			return int(x) - int(y)
		}
	}
	return len(a) - len(b)
}

// appendJSONString appends s as a JSON string, its ASCII capitals in lower
// case when lower is set.
func appendJSONString(b []byte, s string, lower bool) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == 0:
			b = append(b, "\\ufffd"...)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case lower:
			b = append(b, lowerASCII(c))
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
