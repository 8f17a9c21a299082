// Command tcpoll serves the acknowledgement protocol and carries the tools
// around it.
//
//	tcpoll serve [flags]        run the server (default address :3137)
//	tcpoll send ADDR [MSG...]   send MSGs (or stdin) and print the answers
//	tcpoll check ADDR           check a server against PROTOCOL.md (repository root)
//	tcpoll load ADDR            measure a server under load
//
// Run "tcpoll COMMAND -h" for a command's flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

var commands = []struct {
	name, summary string
	run           func(args []string) error
}{
	{"serve", "run the server", serveCmd},
	{"send", "send messages to ADDR and print the answers", sendCmd},
	{"check", "check the server at ADDR against the protocol", checkCmd},
	{"load", "measure the server at ADDR under load", loadCmd},
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: tcpoll COMMAND [flags] [args]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-6s %s\n", c.name, c.summary)
	}
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	for _, c := range commands {
		if c.name == os.Args[1] {
			err := c.run(os.Args[2:])
			if errors.Is(err, flag.ErrHelp) {
				os.Exit(2)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "tcpoll %s: %v\n", c.name, err)
				os.Exit(1)
			}
			return
		}
	}
	usage()
	os.Exit(2)
}
