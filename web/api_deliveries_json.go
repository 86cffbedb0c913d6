package web

import (
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/plugboard/plugboard/app/page"
	"github.com/plugboard/plugboard/webhooks"
)

// The delivery log list is the API's most read page (dashboards poll it):
// its JSON is written here field by field, the bytes encoding/json writes
// for []deliveryJSON (json_test compares them), without its reflection and
// the allocations of converting every row first.

// writeDeliveryPage sends a page of deliveries as writePage would.
func (s *Server) writeDeliveryPage(c echo.Context, p page.Page[webhooks.Delivery]) error {
	if _, pretty := c.QueryParams()["pretty"]; pretty || c.Echo().Debug {
		return writePage(s, c, p, toDeliveryJSON)
	}
	base, _ := url.Parse(s.opts.BaseURL + c.Request().URL.RequestURI())
	c.Response().Header().Set("Link", linkHeader(base, s.cursors, p.Prev, p.Next, p.HasPrev, p.HasNext))
	b := appendDeliveries(make([]byte, 0, 64+320*len(p.Items)), p.Items)
	return c.JSONBlob(http.StatusOK, append(b, '\n'))
}

// appendDeliveries appends items as the JSON array of their deliveryJSON.
func appendDeliveries(b []byte, items []webhooks.Delivery) []byte {
	b = append(b, '[')
	for i, d := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = toDeliveryJSON(d).appendJSON(b)
	}
	return append(b, ']')
}

// appendJSON appends d as encoding/json encodes it; d has no payload or
// attempts (a list's row).
func (d deliveryJSON) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, d.ID)
	b = append(b, `,"eventType":`...)
	b = appendJSONString(b, d.EventType)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, d.Status)
	b = append(b, `,"installation":`...)
	if d.Installation == nil {
		b = append(b, "null"...)
	} else {
		b = appendJSONString(b, *d.Installation)
	}
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(d.Attempts), 10)
	b = append(b, `,"maxAttempts":`...)
	b = strconv.AppendInt(b, int64(d.MaxAttempts), 10)
	b = append(b, `,"lastStatusCode":`...)
	if d.LastStatusCode == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(*d.LastStatusCode), 10)
	}
	b = append(b, `,"lastErrorClass":`...)
	b = appendJSONString(b, d.LastErrorClass)
	b = append(b, `,"orderingKey":`...)
	if d.OrderingKey == nil {
		b = append(b, "null"...)
	} else {
		b = appendJSONString(b, *d.OrderingKey)
	}
	b = append(b, `,"dateCreated":`...)
	b = appendJSONTime(b, &d.DateCreated)
	b = append(b, `,"dateLastAttempt":`...)
	b = appendJSONTime(b, d.DateLastAttempt)
	b = append(b, `,"dateNextAttempt":`...)
	b = appendJSONTime(b, d.DateNextAttempt)
	b = append(b, `,"dateCompleted":`...)
	b = appendJSONTime(b, d.DateCompleted)
	return append(b, '}')
}

// appendJSONTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds), or null.
func appendJSONTime(b []byte, t *time.Time) []byte {
	if t == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendJSONString appends s quoted as encoding/json does without HTML
// escaping: quote, backslash and control characters escaped, invalid
// UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSON appends st as encoding/json encodes it: dashboards poll the
// figures as often as the list.
func (st statsJSON) appendJSON(b []byte) []byte {
	b = append(b, `{"since":`...)
	b = appendJSONTime(b, &st.Since)
	b = append(b, `,"until":`...)
	b = appendJSONTime(b, &st.Until)
	b = append(b, `,"resolution":`...)
	b = appendJSONString(b, st.Resolution)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(st.Attempts), 10)
	b = append(b, `,"successRate":`...)
	b = appendJSONFloat(b, st.SuccessRate)
	b = append(b, `,"buckets":`...)
	if st.Buckets == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, k := range st.Buckets {
			if i > 0 {
				b = append(b, ',')
			}
			b = k.appendJSON(b)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func (k bucketJSON) appendJSON(b []byte) []byte {
	b = append(b, `{"start":`...)
	b = appendJSONTime(b, &k.Start)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(k.Attempts), 10)
	b = append(b, `,"succeeded":`...)
	b = strconv.AppendInt(b, int64(k.Succeeded), 10)
	b = append(b, `,"failed":`...)
	b = strconv.AppendInt(b, int64(k.Failed), 10)
	b = append(b, `,"successRate":`...)
	b = appendJSONFloat(b, k.SuccessRate)
	b = append(b, `,"latencyP50Ms":`...)
	b = appendJSONFloat(b, k.LatencyP50)
	b = append(b, `,"latencyP95Ms":`...)
	b = appendJSONFloat(b, k.LatencyP95)
	b = append(b, `,"latencyP99Ms":`...)
	b = appendJSONFloat(b, k.LatencyP99)
	b = append(b, `,"errorClasses":`...)
	if k.ErrorClasses == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '{')
		for i, class := range slices.Sorted(maps.Keys(k.ErrorClasses)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, class)
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(k.ErrorClasses[class]), 10)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendJSONFloat appends f as encoding/json does: the shortest decimal,
// exponent form outside [1e-6, 1e21). NaN and infinities, which
// encoding/json refuses, are null.
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 as e-9, like encoding/json.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
