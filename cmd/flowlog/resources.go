package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"flowlog/internal/client"
	"flowlog/internal/config"
)

func init() {
	commands = append(commands, newGatewaysCmd, newLogGroupsCmd, newFlowLogsCmd, newAccessKeysCmd)
}

// apiFlags are the flags every API client command shares.
type apiFlags struct {
	server string
	caFile string
	output string
}

func (a *apiFlags) register(cmd *cobra.Command) {
	def := os.Getenv("FLOWLOG_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	cmd.PersistentFlags().StringVar(&a.server, "server", defaultServer(), "flowlog server URL (env FLOWLOG_SERVER)")
	cmd.PersistentFlags().StringVar(&a.caFile, "ca-file", os.Getenv("FLOWLOG_CA_FILE"),
		"PEM CA certificate(s) to trust for an https server, besides the system's (env FLOWLOG_CA_FILE)")
	cmd.PersistentFlags().StringVarP(&a.output, "output", "o", "table", "table, json, or id (just the id, for scripts)")
}

func defaultServer() string {
	if s := os.Getenv("FLOWLOG_SERVER"); s != "" {
		return s
	}
	return "http://" + config.DefaultListen
}

func (a *apiFlags) client() (*client.Client, error) {
	id, secret, err := accessKey()
	if err != nil {
		return nil, err
	}
	if a.output != "table" && a.output != "json" && a.output != "id" {
		return nil, fmt.Errorf("--output must be table, json or id, not %q", a.output)
	}
	return newClient(a.server, id, secret, a.caFile)
}

// newClient returns an API client that trusts caFile (if set) for https.
func newClient(server, id, secret, caFile string) (*client.Client, error) {
	c := client.New(server, id, secret)
	if caFile != "" {
		if err := c.TrustCA(caFile); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// accessKey is the key in FLOWLOG_ACCESS_KEY_ID/_SECRET or, when they are
// unset, the bootstrap key a local server generated in its data dir
// (FLOWLOG_DATA_DIR or the default).
func accessKey() (id, secret string, err error) {
	id, secret = os.Getenv("FLOWLOG_ACCESS_KEY_ID"), os.Getenv("FLOWLOG_ACCESS_KEY_SECRET")
	if id != "" && secret != "" {
		return id, secret, nil
	}
	dir := os.Getenv("FLOWLOG_DATA_DIR")
	if dir == "" {
		dir = config.DefaultDataDir()
	}
	if id, secret, ok := config.ReadCredentials(dir); ok {
		return id, secret, nil
	}
	return "", "", errors.New("set FLOWLOG_ACCESS_KEY_ID and FLOWLOG_ACCESS_KEY_SECRET to an access key")
}

// call sends one request and prints the answer: the JSON as the server sent
// it with --output json, else a table of listKey's items (or the object).
func (a *apiFlags) call(method, path string, q url.Values, body any, listKey string, columns []string) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	resp, err := c.Do(context.Background(), method, path, q, body, nil)
	if err != nil {
		return err
	}
	return a.print(resp.Body, listKey, columns)
}

func (a *apiFlags) print(raw []byte, listKey string, columns []string) error {
	if len(raw) == 0 {
		return nil
	}
	if a.output == "json" {
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return err
		}
		buf.WriteByte('\n')
		_, err := os.Stdout.Write(buf.Bytes())
		return err
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return err
	}
	if a.output == "id" {
		return printIDs(obj, listKey)
	}
	if items, ok := obj[listKey].([]any); ok && listKey != "" {
		rows := make([]map[string]any, 0, len(items))
		for _, it := range items {
			rows = append(rows, it.(map[string]any))
		}
		return client.PrintTable(os.Stdout, rows, columns)
	}
	return client.PrintObject(os.Stdout, obj)
}

// field maps a command-line flag to a JSON body field.
type field struct {
	flag, json, kind, usage string // kind: string, int, bool
}

func addFields(cmd *cobra.Command, fields []field) {
	for _, f := range fields {
		switch f.kind {
		case "int":
			cmd.Flags().Int(f.flag, 0, f.usage)
		case "bool":
			cmd.Flags().Bool(f.flag, false, f.usage)
		default:
			cmd.Flags().String(f.flag, "", f.usage)
		}
	}
}

// bodyOf returns the JSON body made of the flags the user gave.
func bodyOf(cmd *cobra.Command, fields []field) map[string]any {
	body := map[string]any{}
	for _, f := range fields {
		if !cmd.Flags().Changed(f.flag) {
			continue
		}
		switch f.kind {
		case "int":
			body[f.json], _ = cmd.Flags().GetInt(f.flag)
		case "bool":
			body[f.json], _ = cmd.Flags().GetBool(f.flag)
		default:
			body[f.json], _ = cmd.Flags().GetString(f.flag)
		}
	}
	return body
}

func leaf(use, short string, args int, run func(cmd *cobra.Command, args []string) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(args), RunE: run}
}

var gatewayFields = []field{
	{"name", "name", "string", "name (1-64 characters)"},
	{"kind", "kind", "string", "capture, pcap or exporter"},
	{"description", "description", "string", "description (0-255 characters)"},
	{"pcap-path", "pcap_path", "string", "pcap gateways: the capture file to replay"},
	{"pcap-pace", "pcap_pace", "string", "pcap gateways: realtime or fast"},
	{"exporter-addr", "exporter_addr", "string", "exporter gateways: the router's source address"},
	{"sampling-interval", "sampling_interval", "int",
		"exporter gateways: 1:N sampling of records whose router announces no rate (an announced rate wins); 0 clears it"},
	{"agent", "agent", "string", "the agent that runs the gateway (flowlog agents create); empty: the server"},
}

// snmpFields are the exporter's SNMP settings, sent as the body's "snmp"
// object; a given one replaces the settings whole.
var snmpFields = []field{
	{"snmp-version", "version", "string", "exporter gateways: SNMP version to poll the router with, 2c (default) or 3"},
	{"snmp-port", "port", "int", "exporter gateways: the router's SNMP port (default 161)"},
	{"snmp-community", "community", "string", "SNMP v2c community (write-only)"},
	{"snmp-user", "user", "string", "SNMP v3 user"},
	{"snmp-auth-protocol", "auth_protocol", "string", "SNMP v3: MD5, SHA, SHA224, SHA256, SHA384 or SHA512"},
	{"snmp-auth-password", "auth_password", "string", "SNMP v3 auth password (write-only)"},
	{"snmp-priv-protocol", "priv_protocol", "string", "SNMP v3: DES, AES, AES192, AES256, AES192C or AES256C"},
	{"snmp-priv-password", "priv_password", "string", "SNMP v3 privacy password (write-only)"},
}

// gatewayBody is the body of a gateway create or update, with the SNMP
// settings (or their removal, --no-snmp) as one object.
func gatewayBody(cmd *cobra.Command) map[string]any {
	body := bodyOf(cmd, gatewayFields)
	if snmp := bodyOf(cmd, snmpFields); len(snmp) > 0 {
		body["snmp"] = snmp
	}
	if off, _ := cmd.Flags().GetBool("no-snmp"); off {
		body["snmp"] = map[string]any{}
	}
	return body
}

func newGatewaysCmd() *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{Use: "gateways", Short: "Manage gateways (observation points) and their attachments"}
	a.register(cmd)
	cols := []string{"id", "name", "kind", "agent", "description"}
	attCols := []string{"id", "name", "interface", "if_index"}
	create := leaf("create", "Create a gateway", 0, func(cmd *cobra.Command, _ []string) error {
		return a.call("POST", "/v1/gateways", nil, gatewayBody(cmd), "", nil)
	})
	addFields(create, gatewayFields)
	addFields(create, snmpFields)
	update := leaf("update ID", "Change a gateway", 1, func(cmd *cobra.Command, args []string) error {
		return a.call("PATCH", "/v1/gateways/"+url.PathEscape(args[0]), nil, gatewayBody(cmd), "", nil)
	})
	addFields(update, gatewayFields)
	addFields(update, snmpFields)
	update.Flags().Bool("no-snmp", false, "stop polling the router by SNMP (removes its settings)")
	discover := leaf("discover GATEWAY", "List an exporter gateway's interfaces as its router reports them by SNMP", 1,
		func(cmd *cobra.Command, args []string) error {
			body := bodyOf(cmd, []field{{"create-attachments", "create_attachments", "bool", ""}})
			if idx, _ := cmd.Flags().GetUintSlice("if-index"); len(idx) > 0 {
				body["if_indexes"] = idx
			}
			return a.call("POST", "/v1/gateways/"+url.PathEscape(args[0])+"/discover", nil, body, "interfaces",
				[]string{"if_index", "name", "description", "speed_bps", "attachment_id"})
		})
	discover.Flags().Bool("create-attachments", false, "attach each interface not yet attached, named after it")
	discover.Flags().UintSlice("if-index", nil, "with --create-attachments: attach only these ifIndexes")
	attFields := []field{{"name", "name", "string", "name"}, {"interface", "interface", "string", "interface name"},
		{"if-index", "if_index", "int", "ifIndex (exporter gateways)"}}
	attach := leaf("attach GATEWAY", "Add an attachment (interface or ifIndex) to a gateway", 1,
		func(cmd *cobra.Command, args []string) error {
			return a.call("POST", "/v1/gateways/"+url.PathEscape(args[0])+"/attachments", nil,
				bodyOf(cmd, attFields), "", nil)
		})
	addFields(attach, attFields)
	cmd.AddCommand(
		leaf("list", "List gateways", 0, func(*cobra.Command, []string) error {
			return a.call("GET", "/v1/gateways", nil, nil, "gateways", cols)
		}),
		leaf("get ID", "Show a gateway", 1, func(_ *cobra.Command, args []string) error {
			return a.call("GET", "/v1/gateways/"+url.PathEscape(args[0]), nil, nil, "", nil)
		}),
		create, update,
		leaf("delete ID", "Delete a gateway", 1, func(_ *cobra.Command, args []string) error {
			return a.call("DELETE", "/v1/gateways/"+url.PathEscape(args[0]), nil, nil, "", nil)
		}),
		leaf("attachments GATEWAY", "List a gateway's attachments", 1, func(_ *cobra.Command, args []string) error {
			return a.call("GET", "/v1/gateways/"+url.PathEscape(args[0])+"/attachments", nil, nil, "attachments", attCols)
		}),
		attach, discover,
		leaf("detach GATEWAY ATTACHMENT", "Delete an attachment", 2, func(_ *cobra.Command, args []string) error {
			return a.call("DELETE", "/v1/gateways/"+url.PathEscape(args[0])+"/attachments/"+url.PathEscape(args[1]),
				nil, nil, "", nil)
		}),
	)
	return cmd
}

func newLogGroupsCmd() *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{Use: "log-groups", Short: "Manage log groups and their log streams"}
	a.register(cmd)
	create := leaf("create", "Create a log group", 0, func(cmd *cobra.Command, _ []string) error {
		return a.call("POST", "/v1/log-groups", nil, bodyOf(cmd, []field{{"name", "name", "string", ""}}), "", nil)
	})
	create.Flags().String("name", "", "name (1-64 characters)")
	streamFields := []field{{"name", "name", "string", "name (1-64 characters)"},
		{"retention-days", "retention_days", "int", "days records are kept (1-3650, default 7)"}}
	createStream := leaf("create-stream GROUP", "Create a log stream in a group", 1,
		func(cmd *cobra.Command, args []string) error {
			return a.call("POST", "/v1/log-groups/"+url.PathEscape(args[0])+"/log-streams", nil,
				bodyOf(cmd, streamFields), "", nil)
		})
	addFields(createStream, streamFields)
	cmd.AddCommand(
		leaf("list", "List log groups", 0, func(*cobra.Command, []string) error {
			return a.call("GET", "/v1/log-groups", nil, nil, "log_groups", []string{"id", "name", "created_at"})
		}),
		leaf("get ID", "Show a log group", 1, func(_ *cobra.Command, args []string) error {
			return a.call("GET", "/v1/log-groups/"+url.PathEscape(args[0]), nil, nil, "", nil)
		}),
		create,
		leaf("delete ID", "Delete an empty log group", 1, func(_ *cobra.Command, args []string) error {
			return a.call("DELETE", "/v1/log-groups/"+url.PathEscape(args[0]), nil, nil, "", nil)
		}),
		leaf("streams GROUP", "List a group's log streams", 1, func(_ *cobra.Command, args []string) error {
			return a.call("GET", "/v1/log-groups/"+url.PathEscape(args[0])+"/log-streams", nil, nil, "log_streams",
				[]string{"id", "name", "retention_days", "created_at"})
		}),
		createStream,
		leaf("delete-stream GROUP STREAM", "Delete a log stream", 2, func(_ *cobra.Command, args []string) error {
			return a.call("DELETE", "/v1/log-groups/"+url.PathEscape(args[0])+"/log-streams/"+url.PathEscape(args[1]),
				nil, nil, "", nil)
		}),
	)
	return cmd
}

var flowLogFields = []field{
	{"name", "name", "string", "name (1-64 characters)"},
	{"description", "description", "string", "description (0-255 characters)"},
	{"region", "region", "string", "region label"},
	{"resource-group-id", "resource_group_id", "string", "resource group label"},
	{"active-aging", "active_aging", "int", "seconds between reports of a running flow (60-6000, default 300)"},
	{"inactive-aging", "inactive_aging", "int", "idle seconds that end a flow (10-600, default 15)"},
	{"aggregation-interval", "aggregation_interval", "int", "max delivery delay in seconds (60-600, default 600)"},
	{"sampling", "sampling", "int", "meter 1 packet in N (default 1); records hold estimates (counted × N)"},
	{"output-type", "output_type", "string", "sls (log stream), netflow, all, or file (AWS VPC Flow Logs files)"},
	{"log-group", "log_group_id", "string", "log group id (optional)"},
	{"log-stream", "log_stream_id", "string", "log stream id (sls, all)"},
	{"netflow-server-ip", "netflow_server_ip", "string", "collector address (netflow, all)"},
	{"netflow-server-port", "netflow_server_port", "int", "collector port (default 9995)"},
	{"netflow-version", "netflow_version", "string", "V5, V9 (default) or V10"},
	{"enabled", "enabled", "bool", "deliver records (default true)"},
}

// fileOutputFields are the settings of output type file, sent as
// the flow log's "file" object.
var fileOutputFields = []field{
	{"output-dir", "output_dir", "string", "directory of the AWS VPC Flow Logs files, inside the server's file directory (file)"},
	{"log-format", "log_format", "string", "record format in AWS's ${field} syntax (file; default AWS's version 2 fields)"},
	{"file-format", "file_format", "string", "plain-text (gzip, the default) or parquet (file)"},
	{"per-hour-partition", "per_hour_partition", "bool", "partitions by hour as well as by day (file)"},
}

// flowLogBody is the JSON body of a flow log to create or change.
func flowLogBody(cmd *cobra.Command) map[string]any {
	body := bodyOf(cmd, flowLogFields)
	if file := bodyOf(cmd, fileOutputFields); len(file) > 0 {
		body["file"] = file
	}
	return body
}

func newFlowLogsCmd() *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{Use: "flow-logs", Short: "Manage flow logs"}
	a.register(cmd)
	cols := []string{"id", "name", "state", "enabled", "output_type", "targets", "active_aging", "inactive_aging"}
	create := leaf("create", "Create a flow log", 0, func(cmd *cobra.Command, _ []string) error {
		body := flowLogBody(cmd)
		if gw, _ := cmd.Flags().GetString("gateway"); gw != "" {
			att, _ := cmd.Flags().GetString("attachment")
			body["targets"] = []map[string]string{{"gateway_id": gw, "attachment_id": att}}
		}
		if t, _ := cmd.Flags().GetString("client-token"); t != "" {
			body["client_token"] = t
		}
		return a.call("POST", "/v1/flow-logs", nil, body, "", nil)
	})
	addFields(create, slices.Concat(flowLogFields, fileOutputFields))
	create.Flags().String("gateway", "", "bind to this gateway")
	create.Flags().String("attachment", "", "bind to this attachment of --gateway")
	create.Flags().String("client-token", "", "idempotence token")
	update := leaf("update ID", "Change a flow log", 1, func(cmd *cobra.Command, args []string) error {
		return a.call("PATCH", "/v1/flow-logs/"+url.PathEscape(args[0]), nil, flowLogBody(cmd), "", nil)
	})
	addFields(update, slices.Concat(flowLogFields, fileOutputFields))
	target := func(verb string) *cobra.Command {
		c := leaf(verb+" ID", strings.ToUpper(verb[:1])+verb[1:]+" a flow log and a gateway or attachment", 1,
			func(cmd *cobra.Command, args []string) error {
				gw, _ := cmd.Flags().GetString("gateway")
				att, _ := cmd.Flags().GetString("attachment")
				return a.call("POST", "/v1/flow-logs/"+url.PathEscape(args[0])+"/"+verb, nil,
					map[string]string{"gateway_id": gw, "attachment_id": att}, "", nil)
			})
		c.Flags().String("gateway", "", "gateway id")
		c.Flags().String("attachment", "", "attachment id (optional)")
		return c
	}
	list := leaf("list", "List flow logs", 0, func(cmd *cobra.Command, _ []string) error {
		q := url.Values{}
		for _, f := range []string{"name", "state", "output-type", "gateway", "sort-key", "sort-dir", "limit", "marker"} {
			if v, _ := cmd.Flags().GetString(f); v != "" {
				key := strings.ReplaceAll(f, "-", "_")
				if f == "gateway" {
					key = "gateway_id"
				}
				q.Set(key, v)
			}
		}
		return a.call("GET", "/v1/flow-logs", q, nil, "flow_logs", cols)
	})
	for _, f := range []string{"name", "state", "output-type", "gateway", "sort-key", "sort-dir", "limit", "marker"} {
		list.Flags().String(f, "", "filter/paging: "+f)
	}
	post := func(verb, short string) *cobra.Command {
		return leaf(verb+" ID", short, 1, func(_ *cobra.Command, args []string) error {
			return a.call("POST", "/v1/flow-logs/"+url.PathEscape(args[0])+"/"+verb, nil, nil, "", nil)
		})
	}
	cmd.AddCommand(list,
		leaf("get ID", "Show a flow log", 1, func(_ *cobra.Command, args []string) error {
			return a.call("GET", "/v1/flow-logs/"+url.PathEscape(args[0]), nil, nil, "", nil)
		}),
		create, update,
		leaf("delete ID", "Delete a flow log", 1, func(_ *cobra.Command, args []string) error {
			return a.call("DELETE", "/v1/flow-logs/"+url.PathEscape(args[0]), nil, nil, "", nil)
		}),
		post("enable", "Resume delivery"), post("disable", "Stop delivery"),
		target("associate"), target("disassociate"),
	)
	return cmd
}

func newAccessKeysCmd() *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{Use: "access-keys", Short: "Manage your account's access keys (and create accounts)"}
	a.register(cmd)
	create := leaf("create", "Create an access key for your account, or a new account", 0,
		func(cmd *cobra.Command, _ []string) error {
			newAcc, _ := cmd.Flags().GetBool("new-account")
			return a.call("POST", "/v1/access-keys", nil, map[string]bool{"new_account": newAcc}, "", nil)
		})
	create.Flags().Bool("new-account", false, "create a new account (bootstrap account only)")
	// forced runs a change that the server refuses for the account's last
	// enabled key unless --force.
	forced := func(use, short, method, suffix string) *cobra.Command {
		c := leaf(use+" ID", short, 1, func(cmd *cobra.Command, args []string) error {
			var q url.Values
			if force, _ := cmd.Flags().GetBool("force"); force {
				q = url.Values{"force": {"true"}}
			}
			return a.call(method, "/v1/access-keys/"+url.PathEscape(args[0])+suffix, q, nil, "", nil)
		})
		c.Flags().Bool("force", false, "also when it is the account's last enabled key (locks the account out)")
		return c
	}
	cmd.AddCommand(create,
		leaf("list", "List your account's access keys (never their secrets)", 0, func(*cobra.Command, []string) error {
			return a.call("GET", "/v1/access-keys", nil, nil, "access_keys",
				[]string{"access_key_id", "status", "created_at", "last_used_at"})
		}),
		leaf("enable ID", "Accept an access key again", 1, func(_ *cobra.Command, args []string) error {
			return a.call("POST", "/v1/access-keys/"+url.PathEscape(args[0])+"/enable", nil, nil, "", nil)
		}),
		forced("disable", "Refuse an access key from the next request on (it can be enabled again)", "POST", "/disable"),
		forced("delete", "Delete an access key for good", "DELETE", ""),
	)
	return cmd
}

// printIDs prints the object's id, or the id of each listed item (an access
// key's id is its access_key_id).
func printIDs(obj map[string]any, listKey string) error {
	items, ok := obj[listKey].([]any)
	if !ok || listKey == "" {
		items = []any{obj}
	}
	for _, it := range items {
		m, _ := it.(map[string]any)
		if m["id"] != nil {
			fmt.Println(m["id"])
		} else if m["access_key_id"] != nil {
			fmt.Println(m["access_key_id"])
		}
	}
	return nil
}
