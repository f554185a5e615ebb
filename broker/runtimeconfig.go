package broker

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/BurntSushi/toml"
	"github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"
)

// runtimeConfig is the configuration in force: the configuration the
// broker started with and the changes made at run time (set), which the
// metadata store keeps so that they survive a restart.
type runtimeConfig struct {
	cur  atomic.Pointer[Config]
	mu   sync.Mutex // serialises changes
	meta *metaStore // where changes are kept (open)
	log  zerolog.Logger
}

func newRuntimeConfig(cfg Config, log zerolog.Logger) *runtimeConfig {
	rc := &runtimeConfig{log: log}
	rc.cur.Store(&cfg)
	return rc
}

// load returns the configuration in force.
func (rc *runtimeConfig) load() *Config { return rc.cur.Load() }

// dynamicKeys are the config keys `ferry broker config set` may change at
// run time.
var dynamicKeys = map[string]bool{
	"auto_create_topic": true, "auto_create_group": true, "retry_max_times": true, "pull_max_messages": true,
	"pull_max_bytes": true, "long_poll_max": true, "disk_max_used_ratio": true, "default_topic_queue_nums": true,
}

// asMap returns the configuration in force as TOML key → value text.
func (rc *runtimeConfig) asMap() map[string]string {
	cfg := rc.load()
	out := map[string]string{}
	v := reflect.ValueOf(*cfg)
	for i := 0; i < v.NumField(); i++ {
		key := v.Type().Field(i).Tag.Get("toml")
		f := v.Field(i).Interface()
		switch x := f.(type) {
		case Duration:
			out[key] = x.D().String()
		case []string:
			out[key] = strings.Join(x, ",")
		default:
			out[key] = fmt.Sprint(x)
		}
	}
	return out
}

// set changes one run-time configurable key and keeps the change in
// the metadata store (c/<key>), so that it survives a restart: a kept
// change wins over the config file, the environment and the flags.
func (rc *runtimeConfig) set(key, value string) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	next, err := rc.withLocked(key, value)
	if err != nil {
		return err
	}
	if err := rc.meta.writable(); err != nil {
		return err
	}
	if err := rc.meta.db.Set([]byte(prefixConfig+key), []byte(value), pebble.Sync); err != nil {
		return fmt.Errorf("broker: keep %s = %s: %w", key, value, err)
	}
	rc.cur.Store(next)
	rc.log.Info().Str("key", key).Str("value", value).Msg("config changed (kept across restarts)")
	return nil
}

// withLocked is the configuration in force with key set to value,
// or why it cannot be. Called with mu held (or before Start).
func (rc *runtimeConfig) withLocked(key, value string) (*Config, error) {
	if !dynamicKeys[key] {
		keys := make([]string, 0, len(dynamicKeys))
		for k := range dynamicKeys {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("%w: %s cannot change at run time (restart with it in the config file); changeable: %s", ErrInvalidRequest, key, strings.Join(keys, ", "))
	}
	next := *rc.load()
	var doc string
	switch key {
	case "long_poll_max":
		doc = fmt.Sprintf("%s = %q", key, value)
	default:
		doc = key + " = " + value
	}
	if _, err := toml.Decode(doc, &next); err != nil {
		return nil, fmt.Errorf("%w: %s = %s is not a value of its type: %v", ErrInvalidRequest, key, value, err)
	}
	if err := next.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	return &next, nil
}

// open applies the run-time changes kept in meta, where later changes
// are kept. A kept value the configuration no longer accepts is logged
// and dropped.
func (rc *runtimeConfig) open(meta *metaStore) error {
	rc.meta = meta
	return rc.meta.scan(prefixConfig, func(k, v []byte) error {
		key, value := string(k[len(prefixConfig):]), string(v)
		next, err := rc.withLocked(key, value)
		if err != nil {
			rc.log.Warn().Err(err).Str("key", key).Msg("dropping a kept config change")
			return rc.meta.delete(string(k))
		}
		rc.cur.Store(next)
		rc.log.Info().Str("key", key).Str("value", value).Msg("config change kept from an earlier run")
		return nil
	})
}
