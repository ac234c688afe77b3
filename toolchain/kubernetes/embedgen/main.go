// Command embedgen writes the two files the provider binary embeds, from the JSON the pinned
// provider module ships, the way the provider's own build does before `go build`:
//
//	schema.json            -> schema-embed.json            (decoded as a Pulumi package spec,
//	                                                          version set, re-encoded compactly)
//	terraform-mapping.json -> terraform-mapping-embed.json (re-encoded compactly)
//
// Usage: embedgen -src <provider cmd dir> -out <dir> -version <semver>
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
)

func main() {
	src := flag.String("src", "", "folder holding schema.json and terraform-mapping.json")
	out := flag.String("out", ".", "folder to write the *-embed.json files into")
	version := flag.String("version", "", "provider version to stamp into the schema")
	flag.Parse()
	if *src == "" || *version == "" {
		fail(fmt.Errorf("-src and -version are required"))
	}
	if err := writeSchema(*src, *out, *version); err != nil {
		fail(err)
	}
	if err := writeMapping(*src, *out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "embedgen: %v\n", err)
	os.Exit(1)
}

// writeSchema stamps the version: the engine and the SDKs read it from the served schema.
func writeSchema(src, out, version string) error {
	var spec schema.PackageSpec
	if err := readJSON(filepath.Join(src, "schema.json"), &spec); err != nil {
		return err
	}
	spec.Version = version
	return writeJSON(filepath.Join(out, "schema-embed.json"), spec)
}

func writeMapping(src, out string) error {
	var mapping any
	if err := readJSON(filepath.Join(src, "terraform-mapping.json"), &mapping); err != nil {
		return err
	}
	return writeJSON(filepath.Join(out, "terraform-mapping-embed.json"), mapping)
}

func readJSON(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeJSON replaces the file atomically, so an interrupted run never leaves a truncated
// file for the next build to embed.
func writeJSON(path string, value any) error {
	data, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
