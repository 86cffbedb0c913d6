package webhooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/app/fault"
)

// naiveExpansion counts nodes by substituting every $ref with a copy of
// its target, recursively: exponential, obviously right for schemas
// without cycles, and stopped at limit.
func naiveExpansion(root, node any, limit int) int {
	n := 0
	var walk func(v any)
	walk = func(v any) {
		if n > limit {
			return
		}
		n++
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if k == "$ref" {
					target, _ := resolvePointer(root, strings.TrimPrefix(c.(string), "#"))
					walk(target)
					continue
				}
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(node)
	return n
}

// randomDAGSchema builds $defs d0..dN-1 where each may refer only to
// higher-numbered defs (so no cycles), with fan-out that can explode.
func randomDAGSchema(r *rand.Rand) string {
	defs := 2 + r.IntN(22)
	var parts []string
	for i := range defs {
		var items []string
		for range r.IntN(5) {
			if i+1 < defs && r.IntN(4) > 0 {
				items = append(items, fmt.Sprintf(`{"$ref": "#/$defs/d%d"}`, i+1+r.IntN(min(2, defs-i-1))))
			} else {
				items = append(items, `{"type": "string", "maxLength": 5}`)
			}
		}
		if len(items) == 0 {
			parts = append(parts, fmt.Sprintf(`"d%d": {"type": "integer"}`, i))
			continue
		}
		parts = append(parts, fmt.Sprintf(`"d%d": {"anyOf": [%s]}`, i, strings.Join(items, ", ")))
	}
	return `{"$ref": "#/$defs/d0", "$defs": {` + strings.Join(parts, ", ") + `}}`
}

// TestSchemaExpansionAgreesWithSubstitution: over generated acyclic
// schemas, the memoised count refuses exactly those whose naive
// substitution passes MaxSchemaExpansion.
func TestSchemaExpansionAgreesWithSubstitution(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 19))
	refused := 0
	for i := range 500 {
		raw := randomDAGSchema(r)
		var doc any
		if err := json.Unmarshal([]byte(raw), &doc); err != nil {
			t.Fatal(err)
		}
		want := naiveExpansion(doc, doc, MaxSchemaExpansion) > MaxSchemaExpansion
		err := checkSchemaRefs(json.RawMessage(raw))
		if got := err != nil; got != want {
			t.Fatalf("case %d: refused=%v (%v), naive says %v\n%s", i, got, err, want, raw)
		}
		if want {
			refused++
		}
	}
	if refused < 20 || refused > 480 {
		t.Fatalf("%d of 500 refused: the generator does not exercise both sides", refused)
	}
}

func TestSchemaRefs(t *testing.T) {
	for _, tt := range []struct {
		name, schema string
		ok           bool
	}{
		{"no refs", issueSchema, true},
		{"shared definition", `{"type": "object", "properties": {"a": {"$ref": "#/$defs/p"}, "b": {"$ref": "#/$defs/p"}}, "$defs": {"p": {"type": "object", "properties": {"id": {"type": "string"}}}}}`, true},
		{"recursive tree", `{"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}}`, true},
		{"root reference", `{"type": "object", "properties": {"self": {"$ref": "#"}}}`, true},
		{"escaped pointer", `{"$ref": "#/$defs/a~1b", "$defs": {"a/b": {"type": "string"}}}`, true},
		{"remote", `{"$ref": "https://example.com/s.json"}`, false},
		{"anchor", `{"$ref": "#thing", "$defs": {"t": {"$anchor": "thing"}}}`, false},
		{"dangling", `{"$ref": "#/$defs/missing"}`, false},
		{"dynamic", `{"$dynamicRef": "#meta"}`, false},
		{"bomb", `{"$ref": "#/$defs/l0", "$defs": {` + bombDefs(20) + `}}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := checkSchemaRefs(json.RawMessage(tt.schema))
			if (err == nil) != tt.ok {
				t.Fatalf("checkSchemaRefs = %v, want ok=%v", err, tt.ok)
			}
			var fe *fault.Error
			if err != nil && (!errors.As(err, &fe) || fe.Fields["schema"] == "") {
				t.Fatalf("error %v does not name the schema field", err)
			}
			if tt.ok {
				if _, err := compileSchema(json.RawMessage(tt.schema)); err != nil {
					t.Fatalf("accepted schema does not compile: %v", err)
				}
			}
		})
	}
}

func bombDefs(levels int) string {
	var defs []string
	for i := range levels {
		defs = append(defs, fmt.Sprintf(`"l%d": {"allOf": [{"$ref": "#/$defs/l%d"}, {"$ref": "#/$defs/l%d"}]}`, i, i+1, i+1))
	}
	return strings.Join(append(defs, fmt.Sprintf(`"l%d": {"type": "object"}`, levels)), ", ")
}
