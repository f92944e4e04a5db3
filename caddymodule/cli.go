package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// cliSubcommands are the `caddy valohai ...` subcommands; each file that
// adds one appends its constructor here in an init function.
var cliSubcommands = []func() *cobra.Command{runsCommand, retryCommand}

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "valohai",
		Short: "Webhook triggers for Valohai: trigger log, retries, test signatures",
		Long: `Commands of the caddy-valohai plugin.

  caddy valohai runs    lists accepted runs and rejected requests (admin API)
  caddy valohai retry   sends a failed run's failed actions again (admin API)
  caddy valohai sign    prints the headers a sender would send, ready for curl`,
		CobraFunc: func(cmd *cobra.Command) {
			for _, sub := range cliSubcommands {
				cmd.AddCommand(sub())
			}
		},
	})
}

func adminAddressFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("address", caddy.DefaultAdminListen, "address of the running Caddy's admin API")
}

// adminCall sends one request to the running Caddy's admin API and copies
// the answer to out; a non-2xx answer is an error.
func adminCall(addr, method, uri string, out io.Writer) error {
	res, err := caddycmd.AdminAPIRequest(addr, method, uri, http.Header{}, nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, err = io.Copy(out, res.Body)
	return err
}

func runsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runs [--trigger <name>] [--path <path>] [--status <status>] [--limit <n>] [--address <admin>]",
		Short: "List the trigger log: accepted runs and rejected requests, newest first",
		Args:  cobra.NoArgs,
	}
	addr := adminAddressFlag(cmd)
	trigger := cmd.Flags().String("trigger", "", "only runs of this trigger")
	path := cmd.Flags().String("path", "", "only runs and rejections of this request path")
	status := cmd.Flags().String("status", "", "only runs with this status: pending, completed, error, complete_with_error")
	limit := cmd.Flags().Int("limit", 0, "at most this many runs and rejections (default 100)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		q := url.Values{}
		for k, v := range map[string]string{"trigger": *trigger, "path": *path, "status": *status} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if *limit > 0 {
			q.Set("limit", fmt.Sprint(*limit))
		}
		uri := "/valohai/runs"
		if len(q) > 0 {
			uri += "?" + q.Encode()
		}
		return adminCall(*addr, http.MethodGet, uri, cmd.OutOrStdout())
	}
	return cmd
}

func retryCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retry <run_id> [--address <admin>]",
		Short: "Send a failed run's failed actions to Valohai again",
		Args:  cobra.ExactArgs(1),
	}
	addr := adminAddressFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return adminCall(*addr, http.MethodPost, "/valohai/runs/"+url.PathEscape(args[0])+"/retry", cmd.OutOrStdout())
	}
	return cmd
}
