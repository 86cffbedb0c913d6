package webhooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/app/fault"
)

// issueSchema is an event type schema of a realistic size.
const issueSchema = `{
	"type": "object",
	"required": ["title", "severity"],
	"properties": {
		"title": {"type": "string", "minLength": 1, "maxLength": 200},
		"severity": {"enum": ["low", "high", "critical"]},
		"labels": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
		"assignee": {"type": "object", "properties": {"id": {"type": "string"}, "email": {"type": "string", "format": "email"}}},
		"count": {"type": "integer", "minimum": 0}
	}
}`

const issueData = `{"title": "Database on fire", "severity": "critical", "labels": ["db", "prod"], "assignee": {"id": "u1", "email": "a@b.example"}, "count": 3}`

// TestCatalogCompilesEachSchemaOnce: publishing many events of a type
// compiles its schema once; a changed schema is compiled again, and used.
func TestCatalogCompilesEachSchemaOnce(t *testing.T) {
	c := NewCatalog(nil, Options{})
	et := &EventType{Name: "issue.created", Schema: []byte(issueSchema)}
	for i := range 100 {
		// Each publish reads the type afresh, as PublishEvent does.
		fresh := *et
		fresh.Schema = append([]byte(nil), et.Schema...)
		if err := c.Validate(&fresh, json.RawMessage(issueData)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if err := c.Validate(et, json.RawMessage(`{"title": ""}`)); !isCode(err, fault.SchemaMismatch) {
		t.Errorf("bad data: %v, want schema_mismatch", err)
	}
	if n := c.compiles.Load(); n != 1 {
		t.Errorf("%d compiles for 101 publishes of one type, want 1", n)
	}

	// The type's schema changes: the old compiled one is not used again.
	changed := &EventType{Name: "issue.created", Schema: []byte(`{"type": "object", "required": ["id"]}`)}
	if err := c.Validate(changed, json.RawMessage(issueData)); !isCode(err, fault.SchemaMismatch) {
		t.Errorf("data without id against the new schema: %v, want schema_mismatch", err)
	}
	if err := c.Validate(changed, json.RawMessage(`{"id": 1}`)); err != nil {
		t.Error(err)
	}
	other := &EventType{Name: "issue.closed", Schema: []byte(issueSchema)}
	if err := c.Validate(other, json.RawMessage(issueData)); err != nil {
		t.Error(err)
	}
	if n := c.compiles.Load(); n != 3 {
		t.Errorf("%d compiles after a changed schema and a second type, want 3", n)
	}
}

func TestCatalogDataDepth(t *testing.T) {
	c := NewCatalog(nil, Options{MaxDataDepth: 3})
	et := &EventType{Name: "x.y"}
	for _, tt := range []struct {
		data string
		path string // "" when accepted
	}{
		{`{"a": {"b": {"c": 1}}}`, ""},
		{`{"a": {"b": {"c": {}}}}`, "data.a.b.c"},
		{`{"a": [[1, 2]]}`, ""},
		{`{"a": [1, [2, [3]]]}`, "data.a.1.1"},
		{`{"a~/b": {"c/d": {"e": []}}}`, "data.a~/b.c/d.e"},
		{`{"s": "{{{{{{{{[[[[[["}`, ""},
	} {
		err := c.Validate(et, json.RawMessage(tt.data))
		if tt.path == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.data, err)
			}
			continue
		}
		fe, ok := fault.As(err)
		if !ok || fe.Code != fault.TooDeep || !strings.Contains(fe.Fields[tt.path], "3") {
			t.Errorf("%s: %v, want too_deep at %s", tt.data, err, tt.path)
		}
	}
}

func isCode(err error, code fault.Code) bool {
	var fe *fault.Error
	return errors.As(err, &fe) && fe.Code == code
}

// BenchmarkValidate is the cost of checking one published event's data:
// with the schema compiled once per process (as now), and compiled for
// each event (as before).
func BenchmarkValidate(b *testing.B) {
	data := json.RawMessage(issueData)
	b.Run("compiled once", func(b *testing.B) {
		c := NewCatalog(nil, Options{})
		et := &EventType{Name: "issue.created", Schema: []byte(issueSchema)}
		for b.Loop() {
			if err := c.Validate(et, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("compiled per event", func(b *testing.B) {
		for b.Loop() {
			c := NewCatalog(nil, Options{})
			if err := c.Validate(&EventType{Name: "issue.created", Schema: []byte(issueSchema)}, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The deepest schema Create accepts (15 levels of properties, 31 of
	// JSON), and deeper ones it refuses, compiled once.
	for _, levels := range []int{15, 100, 250} {
		b.Run(fmt.Sprintf("compile %d levels of properties", levels), func(b *testing.B) {
			schema := strings.Repeat(`{"type": "object", "properties": {"a": `, levels) + `{}` + strings.Repeat(`}}`, levels)
			for b.Loop() {
				if _, err := compileSchema([]byte(schema)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
