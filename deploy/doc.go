// Package deploy holds the files that run several gridwatch nodes on one
// PostgreSQL and one S3 object store: compose.yaml (three nodes under Docker
// Compose) and k8s/ (a StatefulSet with its Services, PodDisruptionBudget
// and kustomization). It has no code; its test checks that the manifests
// parse and that every option they pass is one `gridwatch serve` knows.
package deploy
