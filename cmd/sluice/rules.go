package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/rules/columnar"
	"github.com/sluice-dev/sluice/rules/ruletest"
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
	cmd.AddCommand(&cobra.Command{
		Use:   "test DIR",
		Short: "Run the rule unit tests in DIR/tests against the rules in DIR",
		Long: `test loads the rules in DIR and runs every test in DIR/tests/*.yaml: each
gives input telemetry as OTLP/JSON and the output expected once the rules ran,
and runs through the same OTLP → Arrow → rules → OTLP path as the worker. A
failing test prints a diff (- expect, + got). It exits 1 if a test fails.
The test file format is described in rules/README.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := rules.Load(args[0])
			var errs rules.Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					fmt.Fprintln(cmd.ErrOrStderr(), e)
				}
				return fmt.Errorf("%s: the rules do not load", args[0])
			}
			if err != nil {
				return err
			}
			tests, err := ruletest.Load(args[0])
			if err != nil {
				return err
			}
			if len(tests) == 0 {
				return fmt.Errorf("%s: no tests in %s", args[0], filepath.Join(args[0], "tests"))
			}
			sum := ruletest.Run(tests, columnar.New(set, columnar.Options{}), cmd.OutOrStdout())
			if sum.Failed > 0 {
				return fmt.Errorf("%d of %d rule tests failed", sum.Failed, sum.Failed+sum.Passed)
			}
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
