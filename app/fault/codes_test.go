package fault

import (
	"go/ast"
	"go/constant"
	"go/types"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
)

func TestRegistryIsComplete(t *testing.T) {
	seen := map[Code]bool{}
	for _, d := range registry {
		if seen[d.Code] {
			t.Errorf("%s is registered twice", d.Code)
		}
		seen[d.Code] = true
		switch {
		case d.Code == "" || strings.Trim(string(d.Code), "abcdefghijklmnopqrstuvwxyz_") != "":
			t.Errorf("%q is not a snake_case code", d.Code)
		case http.StatusText(d.Status) == "" || d.Status < 400:
			t.Errorf("%s: status %d is not an error status", d.Code, d.Status)
		case d.OAuth && d.Status != http.StatusBadRequest && d.Status != http.StatusUnauthorized:
			t.Errorf("%s: RFC 6749 errors are 400 or 401, not %d", d.Code, d.Status)
		case strings.TrimSpace(d.Title) == "" || strings.TrimSpace(d.Description) == "":
			t.Errorf("%s has no title or description for /docs/problems", d.Code)
		}
	}
	codes := Codes()
	if !sort.SliceIsSorted(codes, func(i, j int) bool { return codes[i].Code < codes[j].Code }) || len(codes) != len(registry) {
		t.Errorf("Codes() is not the registry, sorted")
	}
}

// TestEveryCodeIsRegistered type-checks Plugboard and fails on any constant
// of type Code that is not one of codes.go's registered constants: a
// literal passed to a constructor or set as Error.Code, a constant declared
// elsewhere, a conversion Code("x"), a constant of codes.go left out of the
// registry.
func TestEveryCodeIsRegistered(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the module")
	}
	cfg := &packages.Config{
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedSyntax | packages.NeedTypes |
			packages.NeedTypesInfo | packages.NeedImports | packages.NeedDeps,
		Dir:   "../..",
		Tests: true,
	}
	const self = "github.com/plugboard/plugboard/app/fault"
	pkgs, err := packages.Load(cfg, "./marketplace/...", "./webhooks/...", "./web/...", "./app/...", "./cmd/...")
	if err != nil {
		t.Fatal(err)
	}
	if n := packages.PrintErrors(pkgs); n > 0 {
		t.Fatalf("%d errors loading the packages", n)
	}
	var code types.Type
	for _, p := range pkgs {
		if p.PkgPath == self && p.Types != nil {
			code = p.Types.Scope().Lookup("Code").Type()
			for _, name := range p.Types.Scope().Names() {
				if c, ok := p.Types.Scope().Lookup(name).(*types.Const); ok && types.Identical(c.Type(), code) {
					if _, ok := Lookup(Code(constant.StringVal(c.Val()))); !ok {
						t.Errorf("fault.%s (%s) is declared but not registered", name, c.Val())
					}
				}
			}
			break
		}
	}
	if code == nil {
		t.Fatal("app/fault was not loaded")
	}
	checked, done := 0, map[string]bool{} // a package's files are also its test variant's
	for _, p := range pkgs {
		for expr, tv := range p.TypesInfo.Types {
			if tv.Value == nil || !types.Identical(tv.Type, code) {
				continue
			}
			pos := p.Fset.Position(expr.Pos())
			if p.PkgPath == self && filepath.Base(pos.Filename) == "codes.go" {
				continue // the declarations themselves
			}
			if _, paren := expr.(*ast.ParenExpr); paren || constant.StringVal(tv.Value) == "" || done[pos.String()] {
				continue // its inner expression is checked; "" is the zero Code
			}
			done[pos.String()] = true
			checked++
			var id *ast.Ident
			switch e := expr.(type) {
			case *ast.Ident:
				id = e
			case *ast.SelectorExpr:
				id = e.Sel
			}
			var c *types.Const
			if id != nil {
				c, _ = p.TypesInfo.Uses[id].(*types.Const)
			}
			where := strings.TrimPrefix(pos.String(), mustAbs(t, "../..")+"/")
			switch {
			case c == nil || c.Pkg() == nil || c.Pkg().Path() != self ||
				filepath.Base(p.Fset.Position(c.Pos()).Filename) != "codes.go":
				t.Errorf("%s: code %s is not a constant of app/fault/codes.go; register it there (and run /tmp/faultfix)", where, tv.Value)
			default:
				if _, ok := Lookup(Code(constant.StringVal(tv.Value))); !ok {
					t.Errorf("%s: fault.%s is not in the registry", where, c.Name())
				}
			}
		}
	}
	if checked < 50 {
		t.Errorf("checked only %d codes: is the loader seeing the handlers?", checked)
	}
}

func mustAbs(t *testing.T, dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
