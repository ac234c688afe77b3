// Command pulumi-resource-kubernetes serves the Pulumi Kubernetes provider pinned in go.mod.
//
// The provider module ships its schema and Terraform mapping as plain JSON; the embedded,
// version-stamped copies are generated next to this file by `prepare` in build.env
// (go run ./embedgen) and are git-ignored.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var packageSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	// version.Version is stamped with -ldflags -X (see build.env); the engine checks it against
	// the version the plugin was installed under.
	provider.Serve("kubernetes", version.Version, packageSchema, terraformMapping)
}
