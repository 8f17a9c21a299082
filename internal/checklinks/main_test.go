package main

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestCheckTree(t *testing.T) {
	fsys := fstest.MapFS{
		"README.md": {Data: []byte(strings.Join([]string{
			"# title",
			"[ok](PROTOCOL.md) and ![chart](bench/results/chart.svg \"a title\")",
			"[anchor](PROTOCOL.md#examples), [dir](bench/), [web](https://example.com/x.md), [top](#title)",
			"[gone](../elsewhere/PROTOCOL.md)",
			"[abs](/etc/passwd) [missing](docs/missing.md)",
			"`[in code](nowhere.md)` is not a link",
			"```",
			"[in a fence](nowhere.md)",
			"```",
			"[ref]: <PROTOCOL.md>",
			"[badref]: missing-too.md",
			"``a ` [double](nowhere.md)`` and a lone ` before [after](nothere.md)",
		}, "\n"))},
		"PROTOCOL.md":               {Data: []byte("# protocol\n")},
		"bench/results/chart.svg":   {Data: []byte("<svg/>")},
		"bench/README.md":           {Data: []byte("[up](../PROTOCOL.md) [out](../../x.md) [here](results/chart.svg)\n")},
		".git/notes.md":             {Data: []byte("[skipped](nowhere.md)\n")},
		"bench/results/results.txt": {Data: []byte("[not markdown](nowhere.md)\n")},
	}
	var out strings.Builder
	bad, files, err := checkTree(fsys, &out)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"README.md:4: ../elsewhere/PROTOCOL.md: leaves the repository",
		"README.md:5: /etc/passwd: absolute path: links must be relative to the file",
		"README.md:5: docs/missing.md: no such file in the repository",
		"README.md:11: missing-too.md: no such file in the repository",
		"README.md:12: nothere.md: no such file in the repository",
		"bench/README.md:1: ../../x.md: leaves the repository",
	}, "\n") + "\n"
	got := out.String()
	if bad != 6 || files != 3 || !sameLines(got, want) {
		t.Errorf("checkTree: %d bad in %d files:\n%s\nwant 6 in 3:\n%s", bad, files, got, want)
	}
}

func sameLines(a, b string) bool {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(la) != len(lb) {
		return false
	}
	seen := map[string]int{}
	for _, l := range la {
		seen[l]++
	}
	for _, l := range lb {
		seen[l]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}
