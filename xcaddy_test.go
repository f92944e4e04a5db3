package caddyvalohai

import (
	"encoding/json"
	"os"
	"testing"

	"golang.org/x/mod/modfile"
)

// xcaddy.json is the recipe of the supported custom build; it must name the
// Caddy version go.mod builds against and this very module, or users get a
// binary that was never tested.
func TestXcaddyRecipeMatchesGoMod(t *testing.T) {
	raw, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := modfile.Parse("go.mod", raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recipe struct {
		CaddyVersion  string `json:"caddy_version"`
		XcaddyVersion string `json:"xcaddy_version"`
		Plugins       []struct {
			Module  string `json:"module"`
			Version string `json:"version"`
			Replace string `json:"replace"`
		} `json:"plugins"`
	}
	raw, err = os.ReadFile("xcaddy.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &recipe); err != nil {
		t.Fatalf("xcaddy.json: %v", err)
	}
	caddyVersion := ""
	for _, r := range mod.Require {
		if r.Mod.Path == "github.com/caddyserver/caddy/v2" {
			caddyVersion = r.Mod.Version
		}
	}
	if caddyVersion == "" {
		t.Fatal("go.mod does not require github.com/caddyserver/caddy/v2")
	}
	if recipe.CaddyVersion != caddyVersion {
		t.Errorf("xcaddy.json pins Caddy %q, go.mod requires %q", recipe.CaddyVersion, caddyVersion)
	}
	if recipe.XcaddyVersion == "" {
		t.Error("xcaddy.json: xcaddy_version is empty")
	}
	found := false
	for _, p := range recipe.Plugins {
		if p.Module == mod.Module.Mod.Path {
			found = true
			if p.Replace != "." {
				t.Errorf("plugin %s: replace = %q, want \".\" (the checkout)", p.Module, p.Replace)
			}
			if p.Version == "" {
				t.Errorf("plugin %s: an explicit pseudo-version is needed so xcaddy does not query the proxy", p.Module)
			}
		}
	}
	if !found {
		t.Errorf("xcaddy.json does not list this module %s", mod.Module.Mod.Path)
	}
}
