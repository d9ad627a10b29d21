package packaging_test

import (
	"debug/buildinfo"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// paragraph is one stanza of a machine-readable debian/copyright file:
// field → value, continuation lines joined with "\n".
type paragraph map[string]string

// parseCopyright splits a DEP-5 copyright file into its paragraphs.
func parseCopyright(t *testing.T, path string) []paragraph {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var paras []paragraph
	for block := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n\n") {
		p, field := paragraph{}, ""
		for line := range strings.Lines(block) {
			line = strings.TrimRight(line, "\n")
			if strings.HasPrefix(line, " ") && field != "" {
				p[field] += "\n" + strings.TrimSpace(line)
				continue
			}
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				t.Fatalf("%s: not a field or continuation line: %q", path, line)
			}
			field = name
			p[field] = strings.TrimSpace(value)
		}
		paras = append(paras, p)
	}
	return paras
}

// licenseText tells whether the license files of a module hold the
// license a short name stands for.
var licenseText = map[string]func(string) bool{
	"Apache-2.0": func(s string) bool {
		return strings.Contains(s, "Apache License") && strings.Contains(s, "Version 2.0")
	},
	"Expat": func(s string) bool { return strings.Contains(s, "Permission is hereby granted, free of charge") },
	"BSD-2-Clause": func(s string) bool {
		return strings.Contains(s, "Redistribution and use in source and binary forms") && !strings.Contains(s, "endorse or promote")
	},
	"BSD-3-Clause": func(s string) bool {
		return strings.Contains(s, "Redistribution and use in source and binary forms") && strings.Contains(s, "endorse or promote")
	},
	"EPL-2.0": func(s string) bool {
		return strings.Contains(s, "Eclipse Public License") && strings.Contains(s, "2.0")
	},
}

var licenseFileRE = regexp.MustCompile(`(?i)^(licen[cs]e|copying|notice|edl-|epl-)`)

// TestCopyright checks packaging/copyright, the /usr/share/doc/PKG/copyright
// of both packages, against the binaries they ship: every Go module linked
// into edged or edged-reconcile (as the binary records it, `go version -m`)
// has a paragraph, none is listed that is not linked, and each module's own
// license files hold the licenses its paragraph names.
func TestCopyright(t *testing.T) {
	paras := parseCopyright(t, "copyright")
	if !strings.HasPrefix(paras[0]["Format"], "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0") {
		t.Fatalf("copyright: the first paragraph is not a DEP-5 header: %v", paras[0])
	}

	texts := map[string]bool{} // licenses whose text is in a stand-alone paragraph
	for _, p := range paras[1:] {
		if _, ok := p["Files"]; !ok {
			name, text, _ := strings.Cut(p["License"], "\n")
			texts[name] = text != ""
		}
	}
	listed := map[string]string{} // module path (or GOROOT/src) → license expression
	for _, p := range paras[1:] {
		files, ok := p["Files"]
		if !ok {
			continue
		}
		expr, text, _ := strings.Cut(p["License"], "\n")
		if p["Copyright"] == "" || expr == "" {
			t.Errorf("copyright: Files: %s needs Copyright and License", files)
		}
		for _, name := range licenseNames(expr) {
			if text == "" && !texts[name] {
				t.Errorf("copyright: Files: %s: no text of license %s", files, name)
			}
		}
		for f := range strings.FieldsSeq(files) {
			if mod, ok := strings.CutSuffix(f, "/*"); ok {
				listed[mod] = expr
			}
		}
	}

	linked := map[string]string{} // module path → version
	for _, a := range arches() {
		root := extract(t, a)
		for _, bin := range []string{"edged", "edged-reconcile"} {
			info, err := buildinfo.ReadFile(filepath.Join(root, "usr/bin", bin))
			if err != nil {
				t.Fatalf("%s (%s): %v", bin, a.deb, err)
			}
			for _, d := range info.Deps {
				if d.Replace != nil {
					d = d.Replace
				}
				linked[d.Path] = d.Version
			}
		}
	}
	for mod, version := range linked {
		if _, ok := listed[mod]; !ok {
			t.Errorf("copyright: %s %s is linked into the binaries but has no paragraph (Files: %s/*): add its copyright and license from its LICENSE", mod, version, mod)
		}
	}
	modcache := strings.TrimSpace(run(t, "go", "env", "GOMODCACHE"))
	goroot := strings.TrimSpace(run(t, "go", "env", "GOROOT"))
	for mod, expr := range listed {
		dir := filepath.Join(modcache, escapeModule(mod)+"@"+linked[mod])
		switch {
		case mod == "GOROOT/src":
			dir = goroot
		case linked[mod] == "":
			t.Errorf("copyright: Files: %s/* is not linked into the binaries any more: remove the paragraph", mod)
			continue
		}
		text := licenseFiles(t, dir)
		for _, name := range licenseNames(expr) {
			if check, ok := licenseText[name]; !ok {
				t.Errorf("copyright: %s: license %s has no check in licenseText", mod, name)
			} else if !check(text) {
				t.Errorf("copyright: %s: its license files in %s do not hold %s", mod, dir, name)
			}
		}
	}
}

// licenseNames splits a DEP-5 license expression ("EPL-2.0 or BSD-3-Clause").
func licenseNames(expr string) []string {
	var names []string
	for f := range strings.FieldsSeq(strings.NewReplacer(",", " ").Replace(expr)) {
		if f != "or" && f != "and" {
			names = append(names, f)
		}
	}
	return names
}

// licenseFiles concatenates the license files at the top of a module.
func licenseFiles(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Errorf("%v (the module cache should hold it: build-debs.sh just built the binaries)", err)
		return ""
	}
	var b strings.Builder
	for _, e := range entries {
		if e.Type().IsRegular() && licenseFileRE.MatchString(e.Name()) {
			text, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			b.Write(text)
		}
	}
	if b.Len() == 0 {
		t.Errorf("no license file in %s", dir)
	}
	return b.String()
}

// escapeModule is a module path as the module cache spells it: an upper-case
// letter becomes "!" and the lower-case one (golang.org/x/mod/module).
func escapeModule(path string) string {
	var b strings.Builder
	for _, r := range path {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
