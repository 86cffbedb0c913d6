package web

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Pages show JSON documents (payloads, response bodies, audit data,
// schemas) indented for reading. Their authors are outsiders: a document
// may be nested thousands deep, where indenting every level (json.Indent)
// costs the square of the depth in whitespace — 54 KB nested 9,000 deep
// was a 162 MB page. prettyJSON re-indents token by token, in one pass,
// with the indentation held at maxIndentDepth levels and the output cut at
// a limit: its cost is linear in what it shows, whatever the document.
const (
	// maxIndentDepth is the deepest level indented further; deeper
	// levels stay at this indentation.
	maxIndentDepth = 32
	// payloadLimit is how much of an indented body one page shows; the
	// rest is a download of the raw body.
	payloadLimit = 64 << 10
	indentUnit   = "  "
)

// prettyBody is a JSON document as a page shows it.
type prettyBody struct {
	Text      string // indented (or the raw text, when it is not JSON), at most the limit
	Truncated bool   // Text is the first part: the page links to the whole raw body
	Size      int    // bytes of the raw document
}

// indentation is the widest indent written, shared by every call.
var indentation = strings.Repeat(indentUnit, maxIndentDepth)

// prettyJSON indents raw for reading, in at most limit bytes. Text that
// is not valid JSON is shown as it is, cut at limit just the same.
func prettyJSON(raw []byte, limit int) prettyBody {
	out := prettyBody{Size: len(raw)}
	if !json.Valid(raw) {
		out.Text, out.Truncated = cut(raw, limit)
		return out
	}
	var b bytes.Buffer
	b.Grow(min(limit, 2*len(raw)) + 1)
	depth, i := 0, 0
	newline := func() {
		b.WriteByte('\n')
		b.WriteString(indentation[:len(indentUnit)*min(depth, maxIndentDepth)])
	}
	for ; i < len(raw) && b.Len() <= limit; i++ {
		switch c := raw[i]; c {
		case ' ', '\t', '\n', '\r':
		case '"':
			j := stringEnd(raw, i)
			end := j
			if room := limit - b.Len(); end-i > room {
				end = i + room + 1 // enough to know it was cut
			}
			b.Write(raw[i:end])
			i = j - 1
		case '{', '[':
			b.WriteByte(c)
			if k := nextToken(raw, i+1); k < len(raw) && (raw[k] == '}' || raw[k] == ']') {
				b.WriteByte(raw[k]) // {} and [] stay on one line
				i = k
				continue
			}
			depth++
			newline()
		case '}', ']':
			depth--
			newline()
			b.WriteByte(c)
		case ',':
			b.WriteByte(c)
			newline()
		case ':':
			b.WriteString(": ")
		default:
			b.WriteByte(c)
		}
	}
	out.Text, out.Truncated = cut(b.Bytes(), limit)
	out.Truncated = out.Truncated || nextToken(raw, i) < len(raw)
	return out
}

// stringEnd is the index just past the JSON string that starts at raw[i].
func stringEnd(raw []byte, i int) int {
	for j := i + 1; j < len(raw); j++ {
		switch raw[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(raw)
}

// nextToken is the index of the first byte from i that is not whitespace.
func nextToken(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// cut is b as text, at most limit bytes, never ending inside a UTF-8
// sequence; truncated says whether anything was left out.
func cut(b []byte, limit int) (string, bool) {
	if len(b) <= limit {
		return string(b), false
	}
	n := limit
	for n > 0 && n > limit-utf8.UTFMax && !utf8.RuneStart(b[n]) {
		n--
	}
	return string(b[:n]), true
}
