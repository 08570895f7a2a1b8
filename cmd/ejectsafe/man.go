package main

import (
	"fmt"
	"strings"
)

// runMan prints the manual page, in roff, generated from the same table
// as help (testdata/ejectsafe.1.golden is a copy, tested).
func runMan(in *invocation) error {
	fmt.Fprint(in.stdout, manPage())
	return nil
}

// roff escapes text for a roff line: backslashes, hyphens (so they are
// not broken or typeset as dashes), and a leading dot or quote.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffText renders a help paragraph: lines starting with spaces (the
// indented lists) are kept as they are, the rest is filled.
func roffText(b *strings.Builder, text string) {
	for _, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		lines := strings.Split(para, "\n")
		if strings.HasPrefix(lines[0], " ") {
			b.WriteString(".PP\n.nf\n")
			for _, l := range lines {
				b.WriteString(roff(l) + "\n")
			}
			b.WriteString(".fi\n")
			continue
		}
		b.WriteString(".PP\n")
		for _, l := range lines {
			b.WriteString(roff(strings.TrimSpace(l)) + "\n")
		}
	}
}

func manPage() string {
	var b strings.Builder
	b.WriteString(`.TH EJECTSAFE 1 "" "ejectsafe" "User Commands"
.SH NAME
ejectsafe \- SQLite databases on removable drives that survive being pulled
.SH SYNOPSIS
`)
	for _, c := range commands {
		fmt.Fprintf(&b, ".B ejectsafe\n%s\n.br\n", roff(c.synopsis))
	}
	b.WriteString(`.SH DESCRIPTION
.PP
ejectsafe inspects, checks and ejects volumes that hold ejectsafe stores,
and recovers, verifies and benchmarks their databases.
Flags may go anywhere on the command line;
.B \-\-
ends them.
Every
.B \-\-json
prints one JSON object on stdout, errors included (README, "JSON output").
.SH COMMANDS
`)
	for _, c := range commands {
		fmt.Fprintf(&b, ".SS %s\n", roff(c.synopsis))
		roffText(&b, c.long)
		for _, f := range visibleFlags(c) {
			name := `\-\-` + roff(f.Name)
			if a := flagArg(f); a != "" {
				name += " " + `\fI` + a + `\fR`
			}
			def := ""
			if f.DefValue != "" && f.DefValue != "false" {
				def = " (default " + roff(f.DefValue) + ")"
			}
			fmt.Fprintf(&b, ".TP\n.B %s\n%s%s\n", name, roff(f.Usage), def)
		}
	}
	b.WriteString(".SH EXIT STATUS\n")
	roffText(&b, strings.TrimPrefix(exitCodes, "exit codes:\n"))
	b.WriteString(`.SH SEE ALSO
.BR fuser (1),
.BR udisksctl (1),
.BR umount (8),
.BR sqlite3 (1)
`)
	return b.String()
}
