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
		Short: "Grant accounts host interfaces and exporter addresses (bootstrap account)"}
	a.register(cmd)
	create := leaf("create", "Grant an account an interface (--interface) or exporter addresses (--exporter)", 0,
		func(cmd *cobra.Command, _ []string) error {
			account, _ := cmd.Flags().GetString("account")
			iface, _ := cmd.Flags().GetString("interface")
			prefix, _ := cmd.Flags().GetString("exporter")
			if account == "" || (iface == "") == (prefix == "") {
				return errors.New("give --account and one of --interface or --exporter")
			}
			body := map[string]string{"account_id": account, "kind": "capture_interface", "value": iface}
			if prefix != "" {
				body["kind"], body["value"] = "exporter_addr", prefix
			}
			return a.call("POST", "/v1/grants", nil, body, "", nil)
		})
	create.Flags().String("account", "", "the account granted")
	create.Flags().String("interface", "", "a host interface its capture gateways may attach")
	create.Flags().String("exporter", "", "an address or prefix (192.0.2.0/24) its exporter gateways may claim")
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
