package web

import (
	"bytes"
	"encoding/json"
	"time"
)

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func unmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

var timeNow = time.Now
