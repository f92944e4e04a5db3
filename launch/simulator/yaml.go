package simulator

import (
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"
)

// ParseConfigYAML parses a valohai.yaml into the form Commit.Config holds
// and Valohai returns with ?include=config: a list of maps with string keys
// and JSON-compatible values.
func ParseConfigYAML(data []byte) ([]any, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("simulator: valohai.yaml: %w", err)
	}
	if doc == nil {
		return []any{}, nil
	}
	list, ok := doc.([]any)
	if !ok {
		return nil, errors.New("simulator: valohai.yaml: the top level must be a list of step and pipeline definitions")
	}
	config, err := normalizeConfig(list)
	if err != nil {
		return nil, fmt.Errorf("simulator: valohai.yaml: %w", err)
	}
	return config, nil
}
