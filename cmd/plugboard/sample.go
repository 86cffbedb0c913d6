package main

import (
	"sort"
	"time"
)

// sample builds a value that satisfies a JSON Schema in the common cases:
// it takes const, examples, example, default or the first enum value when
// the schema gives one, and otherwise a placeholder of the schema's type,
// filling every property of an object (so required ones are there).
func sample(schema any) any {
	m, ok := schema.(map[string]any)
	if !ok {
		return map[string]any{}
	}
	if v, ok := m["const"]; ok {
		return v
	}
	if ex, ok := m["examples"].([]any); ok && len(ex) > 0 {
		return ex[0]
	}
	for _, k := range []string{"example", "default"} {
		if v, ok := m[k]; ok {
			return v
		}
	}
	if enum, ok := m["enum"].([]any); ok && len(enum) > 0 {
		return enum[0]
	}
	for _, k := range []string{"oneOf", "anyOf", "allOf"} {
		if alts, ok := m[k].([]any); ok && len(alts) > 0 {
			return sample(alts[0])
		}
	}
	typ, _ := m["type"].(string)
	if list, ok := m["type"].([]any); ok && len(list) > 0 {
		typ, _ = list[0].(string)
	}
	if typ == "" && m["properties"] != nil {
		typ = "object"
	}
	switch typ {
	case "object":
		out := map[string]any{}
		props, _ := m["properties"].(map[string]any)
		names := make([]string, 0, len(props))
		for name := range props {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			out[name] = sample(props[name])
		}
		return out
	case "array":
		return []any{sample(m["items"])}
	case "integer":
		if v, ok := m["minimum"].(float64); ok {
			return int64(v)
		}
		return 1
	case "number":
		if v, ok := m["minimum"].(float64); ok {
			return v
		}
		return 1.5
	case "boolean":
		return true
	case "null":
		return nil
	case "string":
		switch m["format"] {
		case "date-time":
			return time.Now().UTC().Format(time.RFC3339)
		case "date":
			return time.Now().UTC().Format(time.DateOnly)
		case "uuid":
			return "00000000-0000-4000-8000-000000000000"
		case "email":
			return "someone@example.com"
		case "uri", "url":
			return "https://example.com/"
		}
		return "sample"
	}
	return map[string]any{}
}
