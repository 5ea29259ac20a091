// Package deploy tests the Helm chart in helm/sluice without a cluster: it
// renders the chart with Helm's own engine for the default values, every
// values file in examples/ and a few combinations, decodes every object
// strictly into the Kubernetes API types (a misspelt field fails), runs
// `sluice check` on each role's rendered config, and asserts the
// properties the chart promises (non-root containers, probes on the admin
// port, one workload per sink, exclusive autoscalers, the admin port's
// NetworkPolicies, the alert rules).
//
// It is a module of its own so that Helm and the Kubernetes modules stay
// out of the sluice binary's module: `cd deploy && go test ./...`.
package deploy
