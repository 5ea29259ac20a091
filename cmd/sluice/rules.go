package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/rules"
)

// newRulesCmd is `sluice rules`: tools for rule directories.
func newRulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Work with rule files",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check DIR",
		Short: "Load, type check and compile every rule file in DIR; print each problem as file:line:col",
		Long: `check loads every *.yaml and *.yml file in DIR as the worker would, type checks
and compiles every expression, and prints every problem found as
file:line:col: rule "name": key: message. It exits 1 if there is any, so it
can run as a pre-commit hook or CI step.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := rules.Load(args[0])
			var errs rules.Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					fmt.Fprintln(cmd.ErrOrStderr(), e)
				}
				return fmt.Errorf("%s: %d %s", args[0], len(errs), rulesPlural(len(errs), "problem", "problems"))
			}
			if err != nil {
				return err
			}
			nf := len(set.Files())
			fmt.Fprintf(cmd.OutOrStdout(), "%d %s in %d %s ok, version %s\n",
				set.Len(), rulesPlural(set.Len(), "rule", "rules"), nf, rulesPlural(nf, "file", "files"), set.Version())
			return nil
		},
	})
	return cmd
}

func rulesPlural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
