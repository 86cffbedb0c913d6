package webhooks

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/plugboard/plugboard/app/fault"
)

// MaxSchemaExpansion bounds how many schema nodes an event type's schema
// holds once every $ref is replaced by what it points at. Size and depth do
// not bound validation cost on their own: 1 KB of allOf levels, each
// referring twice to the level below, expands to a million nodes and took
// 4 s to check one event. Each node costs a validation step, so an event is
// checked in at most this many.
const MaxSchemaExpansion = 10_000

// checkSchemaRefs refuses references a schema may not hold (anything but a
// JSON Pointer into the schema itself: no remote documents, anchors or
// dynamic references) and schemas whose references expand past
// MaxSchemaExpansion nodes. It is linear in the schema's size: each
// reference target's expanded size is computed once.
func checkSchemaRefs(raw json.RawMessage) error {
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil // compileSchema says what is wrong with it
	}
	x := &expansion{root: doc, sizes: map[string]int{}}
	n := x.size(doc, "")
	if x.err != nil {
		return x.err
	}
	if n > MaxSchemaExpansion {
		return fault.Invalid(fault.SchemaTooLarge, fmt.Sprintf("The schema expands to more than %d nodes once its references are followed.", MaxSchemaExpansion),
			map[string]string{"schema": fmt.Sprintf("must expand to at most %d schema nodes with every $ref followed, not %d or more", MaxSchemaExpansion, n)})
	}
	return nil
}

// expansion computes expanded sizes, memoised per JSON Pointer. A target
// still being computed (a recursive schema) counts as one node: recursion
// is bounded by the data's depth, not the schema's.
type expansion struct {
	root  any
	sizes map[string]int // pointer → expanded size; -1 while computing
	err   error
}

func (x *expansion) size(node any, ptr string) int {
	if x.err != nil {
		return 0
	}
	switch v := node.(type) {
	case map[string]any:
		n := 1
		for k, child := range v {
			switch k {
			case "$dynamicRef", "$recursiveRef":
				x.err = fault.Field("schema", fmt.Sprintf("%s is not allowed; use $ref with a pointer such as #/$defs/name", k))
				return 0
			case "$ref":
				ref, _ := child.(string)
				n += x.ref(ref)
				continue
			}
			n += x.size(child, ptr+"/"+escapePointer(k))
			if n > MaxSchemaExpansion {
				return n
			}
		}
		return n
	case []any:
		n := 1
		for i, child := range v {
			n += x.size(child, ptr+"/"+strconv.Itoa(i))
			if n > MaxSchemaExpansion {
				return n
			}
		}
		return n
	}
	return 1
}

// ref is the expanded size of what ref points at.
func (x *expansion) ref(ref string) int {
	if ref != "#" && !strings.HasPrefix(ref, "#/") {
		x.err = fault.Field("schema", fmt.Sprintf("$ref %q must point into the schema itself, such as #/$defs/name", ref))
		return 0
	}
	ptr := strings.TrimPrefix(ref, "#")
	if n, ok := x.sizes[ptr]; ok {
		if n < 0 {
			return 1
		}
		return n
	}
	target, ok := resolvePointer(x.root, ptr)
	if !ok {
		x.err = fault.Field("schema", fmt.Sprintf("$ref %q points at nothing in the schema", ref))
		return 0
	}
	x.sizes[ptr] = -1
	n := x.size(target, ptr)
	x.sizes[ptr] = n
	return n
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// resolvePointer follows an RFC 6901 JSON Pointer ("" is the root).
func resolvePointer(doc any, ptr string) (any, bool) {
	if ptr == "" {
		return doc, true
	}
	cur := doc
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[tok]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}
