package main

import (
	"encoding/json"
	"testing"
)

func TestSampleFollowsTheSchema(t *testing.T) {
	tests := []struct {
		schema, want string
	}{
		{`null`, `{}`},
		{`{"type":"object","properties":{"n":{"type":"integer","minimum":3},"ok":{"type":"boolean"},"tags":{"type":"array","items":{"type":"string"}}}}`,
			`{"n":3,"ok":true,"tags":["sample"]}`},
		{`{"properties":{"kind":{"enum":["a","b"]},"id":{"type":"string","format":"uuid"}}}`, `{"id":"00000000-0000-4000-8000-000000000000","kind":"a"}`},
		{`{"type":"object","properties":{"v":{"const":7},"w":{"examples":["x"]},"x":{"type":["string","null"]}}}`, `{"v":7,"w":"x","x":"sample"}`},
	}
	for _, tt := range tests {
		var schema any
		json.Unmarshal([]byte(tt.schema), &schema)
		got, _ := json.Marshal(sample(schema))
		if string(got) != tt.want {
			t.Errorf("sample(%s) = %s, want %s", tt.schema, got, tt.want)
		}
	}
}
