// Command flowlog is the one binary of flowlog: server, meter, collector,
// and the clients of its API.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// commands holds the constructors of the subcommands; each subcommand's file
// adds itself in an init function, so adding one touches no other file.
var commands []func() *cobra.Command

func main() {
	root := &cobra.Command{
		Use:           "flowlog",
		Short:         "Self-hosted flow logs: meter, collect, store, query and export network flows",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, c := range commands {
		root.AddCommand(c())
	}
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "flowlog:", err)
		os.Exit(1)
	}
}
