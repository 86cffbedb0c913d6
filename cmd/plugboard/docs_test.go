package main

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The docs are run as a reader would run them: every shell block of
// README.md, docs/quickstart.md and docs/guides/*.md against a real
// `plugboard serve`, and every Go block type-checked against the SDK.

// blocks returns the fenced blocks of lang in a Markdown file, in order,
// each with the HTML comment right above its fence ("" when none).
func blocks(t *testing.T, path, lang string) (code, notes []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?ms)(?:<!--(.*?)-->\\s*\\n)?^[ \\t]*```" + lang + "\\n(.*?)^[ \\t]*```")
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		notes = append(notes, strings.TrimSpace(m[1]))
		code = append(code, m[2])
	}
	return code, notes
}

// shell runs script with bash from the repository's root against the
// platform at base, and returns what it printed.
func shell(t *testing.T, base string, env map[string]string, script string, extra ...string) string {
	t.Helper()
	root, _ := filepath.Abs("../..")
	cmd := exec.Command("bash", "-c", "set -eu\n"+script)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PLUGBOARD="+base, "PLUGBOARD_BIN="+binary)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, extra...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Cleanup(func() {
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the script failed: %v\n%s", err, out)
	}
	return string(out)
}

// TestQuickstartWorks runs every shell block of docs/quickstart.md, then
// asks the three places a partner looks whether the delivery succeeded:
// listen's output, the delivery log (API, and the attempt's URL: nothing
// may have gone anywhere but the laptop), and the installed-apps page.
func TestQuickstartWorks(t *testing.T) {
	env := testEnv(t)
	base := startServe(t, env)
	code, _ := blocks(t, "../../docs/quickstart.md", "sh")
	root, _ := filepath.Abs("../..")
	t.Cleanup(func() { os.Remove(filepath.Join(root, "partner.log")); os.Remove(filepath.Join(root, "listen.log")) })
	partnerPort := strings.Split(freePort(t), ":")[1]
	check := `
echo "DELIVERIES $(curl -sf "$B/apps/my-first-app/deliveries/" -H "Authorization: Bearer $TOKEN")"
id=$(curl -sf "$B/apps/my-first-app/deliveries/" -H "Authorization: Bearer $TOKEN" | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4)
echo "DETAIL $(curl -sf "$B/apps/my-first-app/deliveries/$id/" -H "Authorization: Bearer $TOKEN")"
curl -sf -c jar -o /dev/null --data-urlencode email=me@example.com --data-urlencode "password=correct horse battery" "$PLUGBOARD/login"
echo "PAGE $(curl -sf -b jar "$PLUGBOARD/orgs/my-team/installations" | tr '\n' ' ')"
rm -f jar
`
	out := shell(t, base, env, strings.Join(code, "")+check, "PARTNER_PORT="+partnerPort)

	if !regexp.MustCompile(`installation\.created +→ 204`).MatchString(out) {
		t.Fatalf("listen did not forward installation.created with a 204:\n%s", out)
	}
	var list []struct {
		EventType, Status string
	}
	if err := json.Unmarshal([]byte(lineAfter(t, out, "DELIVERIES ")), &list); err != nil || len(list) != 1 ||
		list[0].EventType != "installation.created" || list[0].Status != "succeeded" {
		t.Fatalf("the delivery log says %+v (%v)", list, err)
	}
	var detail struct {
		Attempts []struct{ URL string } `json:"attemptsDetail"`
	}
	if err := json.Unmarshal([]byte(lineAfter(t, out, "DETAIL ")), &detail); err != nil || len(detail.Attempts) == 0 {
		t.Fatalf("delivery detail: %v\n%s", err, out)
	}
	for _, a := range detail.Attempts {
		if u, err := url.Parse(a.URL); a.URL != "plugboard listen" && (err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost")) {
			t.Errorf("an attempt went to %q, off the laptop", a.URL)
		}
	}
	if page := lineAfter(t, out, "PAGE "); !strings.Contains(page, "1 of 1 succeeded") {
		t.Errorf("the installed-apps page does not say the delivery succeeded:\n%s", page)
	}
	if !strings.Contains(out, "succeeded") {
		t.Errorf("plugboard deliveries list does not say succeeded:\n%s", out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get("http://localhost:" + partnerPort + "/")
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if strings.Contains(string(b), "verified=true") {
				return
			}
		}
		if time.Now().After(deadline) {
			partnerLog, _ := os.ReadFile(filepath.Join(root, "partner.log"))
			t.Fatalf("the partner never confirmed the install:\n%s\npartner.log:\n%s", out, partnerLog)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func lineAfter(t *testing.T, out, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			return rest
		}
	}
	t.Fatalf("no %q line in:\n%s", prefix, out)
	return ""
}

// TestReadmeAndGuidesRun runs README.md's shell blocks (but the first: make
// run and make test, which this very suite is) and each guide's, the
// guides after the quickstart's first block, which they assume.
func TestReadmeAndGuidesRun(t *testing.T) {
	readme, _ := blocks(t, "../../README.md", "sh")
	if len(readme) < 2 || !strings.Contains(readme[0], "make run") {
		t.Fatalf("README's first block is not make run / make test: %q", readme)
	}
	quick, _ := blocks(t, "../../docs/quickstart.md", "sh")
	guides, _ := filepath.Glob("../../docs/guides/*.md")
	cases := map[string]string{"README.md": strings.Join(readme[1:], "")}
	for _, g := range guides {
		if code, _ := blocks(t, g, "sh"); len(code) > 0 {
			cases[filepath.Base(g)] = quick[0] + strings.Join(code, "")
		}
	}
	if len(cases) < 2 {
		t.Fatalf("found shell blocks in %d documents", len(cases))
	}
	for name, script := range cases {
		t.Run(name, func(t *testing.T) {
			env := testEnv(t)
			base := startServe(t, env)
			out := shell(t, base, env, script)
			t.Logf("%s:\n%s", name, out)
		})
	}
}

// TestGuidesGoSnippetsCompile type-checks every Go block of the guides
// against the real packages. A block is a whole file when it starts with
// package; otherwise it is the body of a function whose parameters the
// HTML comment above it declares (<!-- go: ctx context.Context, … -->),
// and its own import lines become the file's.
func TestGuidesGoSnippetsCompile(t *testing.T) {
	files, _ := filepath.Glob("../../docs/guides/*.md")
	files = append(files, "../../docs/quickstart.md", "../../README.md")
	n := 0
	for _, f := range files {
		code, notes := blocks(t, f, "go")
		for i, c := range code {
			n++
			t.Run(fmt.Sprintf("%s#%d", filepath.Base(f), i+1), func(t *testing.T) {
				typeCheck(t, snippetFile(t, c, notes[i]))
			})
		}
	}
	if n == 0 {
		t.Fatal("no Go block in the docs")
	}
}

func snippetFile(t *testing.T, code, note string) string {
	t.Helper()
	if strings.HasPrefix(strings.TrimSpace(code), "package ") {
		return code
	}
	params, ok := strings.CutPrefix(note, "go:")
	if !ok {
		t.Fatalf("a Go fragment without a <!-- go: params --> comment above it:\n%s", code)
	}
	var imports, body []string
	for _, l := range strings.Split(code, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "import ") {
			imports = append(imports, strings.TrimSpace(l))
		} else {
			body = append(body, l)
		}
	}
	if strings.Contains(params, "context.") && !strings.Contains(code, `"context"`) {
		imports = append(imports, `import "context"`)
	}
	return "package snippet\n\n" + strings.Join(imports, "\n") + "\n\nfunc _(" + strings.TrimSpace(params) + ") {\n" + strings.Join(body, "\n") + "\n}\n"
}

// typeCheck checks src with the real packages, forgiving only what a
// fragment cannot help: values it makes for the reader and never uses.
func typeCheck(t *testing.T, src string) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "snippet.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	var errs []string
	conf := types.Config{Importer: importer.ForCompiler(fset, "source", nil), Error: func(err error) {
		if msg := err.Error(); !strings.Contains(msg, "declared and not used") && !strings.Contains(msg, "imported and not used") {
			errs = append(errs, msg)
		}
	}}
	_, _ = conf.Check("snippet", fset, []*ast.File{f}, nil)
	if len(errs) > 0 {
		t.Fatalf("%s\n%s", strings.Join(errs, "\n"), src)
	}
}
