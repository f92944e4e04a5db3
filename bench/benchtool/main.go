// Command benchtool is the helper of bench/run.sh: it writes the request
// bodies, signs them the way the senders do, sends a fixed number of
// requests (for the memory figure), finds free loopback ports and turns the
// raw trial records into the Markdown report.
//
// The throughput itself is measured with wrk (see bench/README.md for why);
// benchtool only does what a shell script does badly. It talks to 127.0.0.1
// only.
//
//	benchtool body   -size 1024 -o body.json
//	benchtool sign   -scheme github|slack -secret S -body body.json [-ts unix]
//	benchtool send   -url URL -n 10000 -c 16 -body body.json -headers h.txt
//	benchtool ports  -n 6
//	benchtool report -trials trials.tsv [-scenarios scenarios.tsv] [-conns 32] [-mem mem.tsv] [-gobench dir]
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "body":
		err = cmdBody(args)
	case "sign":
		err = cmdSign(args)
	case "send":
		err = cmdSend(args)
	case "ports":
		err = cmdPorts(args)
	case "report":
		err = cmdReport(args, os.Stdout)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool "+os.Args[1]+":", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchtool body|sign|send|ports|report [flags] (see bench/README.md)")
	os.Exit(2)
}
