// Command checklinks checks the relative links of the repository's
// Markdown files: each must name a file or directory that exists inside
// the repository. A link that leaves it (../ past the root, an absolute
// path) fails too, since it breaks in every clone but the author's.
// Links with a scheme (https:, mailto:) and bare #anchors are not
// checked; nor are links inside code spans and fenced code blocks.
//
//	go run ./internal/checklinks [ROOT]     (scripts/checklinks)
//
// It prints one line per broken link, FILE:LINE: TARGET: why, and exits 1
// if there is any.
package main

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

func main() {
	root := "."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	bad, files, err := checkTree(os.DirFS(root), os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "checklinks:", err)
		os.Exit(2)
	}
	if bad > 0 {
		fmt.Fprintf(os.Stderr, "checklinks: %d broken links in %d Markdown files\n", bad, files)
		os.Exit(1)
	}
}

// checkTree checks every *.md file under fsys but .git, writing a line to
// w for each broken link, and returns how many there were and how many
// files it read.
func checkTree(fsys fs.FS, w io.Writer) (bad, files int, err error) {
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".md") {
			return nil
		}
		files++
		f, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		for _, l := range links(f) {
			if why := check(fsys, path.Dir(p), l.target); why != "" {
				fmt.Fprintf(w, "%s:%d: %s: %s\n", p, l.line, l.target, why)
				bad++
			}
		}
		return nil
	})
	return bad, files, err
}

// link is a link target and the line it is on.
type link struct {
	line   int
	target string
}

var (
	// inlineRE matches the target of [text](target "title") and
	// ![alt](target), with or without <> around the target.
	inlineRE = regexp.MustCompile(`\]\(\s*(<[^>]*>|[^)\s]*)`)
	// refRE matches a reference definition, [label]: target.
	refRE    = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)`)
	fenceRE  = regexp.MustCompile("^ {0,3}(```+|~~~+)")
	schemeRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// links returns the link targets of a Markdown text, outside code.
func links(r io.Reader) []link {
	var out []link
	var fence string // the open fence, if in a fenced block
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			switch {
			case fence == "":
				fence = m[1]
			case m[1][0] == fence[0] && len(m[1]) >= len(fence):
				fence = ""
			}
			continue
		}
		if fence != "" {
			continue
		}
		line = stripCode(line)
		if m := refRE.FindStringSubmatch(line); m != nil {
			out = append(out, link{n, strings.Trim(m[1], "<>")})
			continue
		}
		for _, m := range inlineRE.FindAllStringSubmatch(line, -1) {
			out = append(out, link{n, strings.Trim(m[1], "<>")})
		}
	}
	return out
}

// stripCode removes the code spans of a line: a run of backticks up to
// the next run of the same length. An unmatched run is literal text.
func stripCode(line string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(line, '`')
		if i < 0 {
			b.WriteString(line)
			return b.String()
		}
		b.WriteString(line[:i])
		n := len(line[i:]) - len(strings.TrimLeft(line[i:], "`"))
		tick, rest := line[i:i+n], line[i+n:]
		end := -1
		for j := 0; j < len(rest); {
			k := strings.Index(rest[j:], tick)
			if k < 0 {
				break
			}
			k += j
			m := len(rest[k:]) - len(strings.TrimLeft(rest[k:], "`"))
			if m == n {
				end = k
				break
			}
			j = k + m
		}
		if end < 0 {
			b.WriteString(tick)
			line = rest
			continue
		}
		line = rest[end+n:]
	}
}

// check says what is wrong with a link target found in a file in dir, or
// "" if nothing is.
func check(fsys fs.FS, dir, target string) string {
	if target == "" {
		return "empty link"
	}
	if schemeRE.MatchString(target) || strings.HasPrefix(target, "#") {
		return ""
	}
	if strings.HasPrefix(target, "//") {
		return "" // a scheme-relative URL
	}
	p, _, _ := strings.Cut(target, "#")
	p, _, _ = strings.Cut(p, "?")
	if u, err := url.PathUnescape(p); err == nil {
		p = u
	}
	if strings.HasPrefix(p, "/") || filepath.IsAbs(p) {
		return "absolute path: links must be relative to the file"
	}
	full := path.Join(dir, p)
	if full == ".." || strings.HasPrefix(full, "../") {
		return "leaves the repository"
	}
	if _, err := fs.Stat(fsys, full); err != nil {
		return "no such file in the repository"
	}
	return ""
}
