package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"
)

// credentialsProfile is one table of the credentials file:
//
//	[default]
//	access_key = "app-key1"
//	secret_key = "app-secret"
//
//	[prod]
//	access_key = "..."
//	secret_key = "..."
type credentialsProfile struct {
	AccessKey string `toml:"access_key"`
	SecretKey string `toml:"secret_key"`
}

// defaultCredentialsFile is ~/.config/ferry/credentials (the user config
// directory of the platform).
func defaultCredentialsFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "ferry", "credentials")
}

// loadProfile reads profile name from file (defaults: the user's file and
// [default]). With no name given, a missing file or profile means no
// credentials; a named one must exist.
func loadProfile(file, name string) (credentialsProfile, error) {
	named := name != ""
	if file == "" {
		file = defaultCredentialsFile()
	}
	if name == "" {
		name = "default"
	}
	var profiles map[string]credentialsProfile
	if file != "" {
		if _, err := toml.DecodeFile(file, &profiles); err != nil {
			if errors.Is(err, fs.ErrNotExist) && !named {
				return credentialsProfile{}, nil
			}
			return credentialsProfile{}, fmt.Errorf("credentials file: %w", err)
		}
	}
	p, ok := profiles[name]
	if !ok {
		if named {
			return p, fmt.Errorf("credentials file %s has no profile [%s]", file, name)
		}
		return p, nil
	}
	if p.AccessKey == "" || p.SecretKey == "" {
		return p, fmt.Errorf("credentials profile [%s] in %s needs access_key and secret_key", name, file)
	}
	return p, nil
}
