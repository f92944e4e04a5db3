// Command soak is the load-and-check program of bench/soak.sh. It drives a
// running caddy-valohai gateway with a sustained, concurrent mix of valid
// and hostile webhook deliveries, checks every answer's status and body,
// samples the gateway's memory, injects a Valohai outage halfway through,
// and at the end verifies that every acknowledged run was launched exactly
// once. It talks to 127.0.0.1 only; the load stops by itself after a
// duration or a request count, whichever comes first.
//
//	soak ports -n 3       print n free loopback ports, one a line
//	soak run [flags]      the soak (soak run -h for the flags)
//
// The trigger secrets come from SOAK_GITHUB_SECRET and SOAK_SLACK_SECRET,
// never from flags, so they do not show in the process list. See
// bench/README.md, "Soak run", for the mix and what each kind must get
// back.
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/hooklaunch/caddy-valohai/internal/freeport"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "ports":
		err = cmdPorts(os.Args[2:])
	case "run":
		var failed bool
		failed, err = cmdRun(os.Args[2:], os.Stdout)
		if err == nil && failed {
			os.Exit(1)
		}
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak "+os.Args[1]+":", err)
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: soak ports -n N | soak run [flags] (see bench/README.md, \"Soak run\")")
	os.Exit(2)
}

// cmdPorts prints distinct free loopback ports outside the kernel's
// ephemeral range: the soak kills and restarts the gateway on its port
// (internal/freeport).
func cmdPorts(args []string) error {
	n := 3
	if len(args) == 2 && args[0] == "-n" {
		v, err := strconv.Atoi(args[1])
		if err != nil || v < 1 || v > 20 {
			return fmt.Errorf("-n takes 1-20, got %q", args[1])
		}
		n = v
	} else if len(args) != 0 {
		return fmt.Errorf("usage: soak ports -n N")
	}
	ports, err := freeport.Pick(n)
	if err != nil {
		return err
	}
	for _, p := range ports {
		fmt.Println(p)
	}
	return nil
}
