package main

import (
	"errors"
	"net/url"

	"github.com/spf13/cobra"
)

func init() { commands = append(commands, newGrantsCmd) }

// newGrantsCmd manages what the operator lets other accounts observe.
func newGrantsCmd() *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{Use: "grants",
		Short: "Grant accounts host interfaces, exporter addresses and agents (bootstrap account)"}
	a.register(cmd)
	create := leaf("create", "Grant an account an interface (--interface), exporter addresses (--exporter) or an agent (--agent)", 0,
		func(cmd *cobra.Command, _ []string) error {
			account, _ := cmd.Flags().GetString("account")
			var kinds []string
			body := map[string]string{"account_id": account}
			for flag, kind := range map[string]string{"interface": "capture_interface", "exporter": "exporter_addr", "agent": "agent"} {
				if v, _ := cmd.Flags().GetString(flag); v != "" {
					kinds = append(kinds, kind)
					body["kind"], body["value"] = kind, v
				}
			}
			if account == "" || len(kinds) != 1 {
				return errors.New("give --account and one of --interface, --exporter or --agent")
			}
			return a.call("POST", "/v1/grants", nil, body, "", nil)
		})
	create.Flags().String("account", "", "the account granted")
	create.Flags().String("interface", "", "a host interface its capture gateways may attach")
	create.Flags().String("exporter", "", "an address or prefix (192.0.2.0/24) its exporter gateways may claim")
	create.Flags().String("agent", "", "an agent its gateways may be assigned to")
	list := leaf("list", "List grants (all of them for the bootstrap account, else your own)", 0,
		func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if account, _ := cmd.Flags().GetString("account"); account != "" {
				q.Set("account_id", account)
			}
			return a.call("GET", "/v1/grants", q, nil, "grants", []string{"id", "account_id", "kind", "value", "created_at"})
		})
	list.Flags().String("account", "", "only this account's grants")
	cmd.AddCommand(create, list,
		leaf("delete ID", "Withdraw a grant; flow logs using it stop and fail", 1, func(_ *cobra.Command, args []string) error {
			return a.call("DELETE", "/v1/grants/"+url.PathEscape(args[0]), nil, nil, "", nil)
		}))
	return cmd
}
