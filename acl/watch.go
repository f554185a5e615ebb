package acl

import (
	"crypto/sha256"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// DefaultReloadInterval is how often a Watcher looks at its file.
const DefaultReloadInterval = 2 * time.Second

// Watcher holds the rules of an ACL file and reloads them when the file's
// content changes. A file that fails to load keeps the rules in force;
// the failure is logged once per distinct content.
//
// Goroutines: one, started by Watch, which owns the file's last seen hash
// and is gone when Close returns.
type Watcher struct {
	path string
	log  zerolog.Logger
	cur  atomic.Pointer[Rules]
	quit chan struct{}
	done chan struct{}

	last [sha256.Size]byte // loop goroutine only (after Watch returns)
}

// Load reads and parses an ACL file.
func Load(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("acl: %w", err)
	}
	r, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Watch loads path (an error if it cannot) and reloads it every interval
// (0: DefaultReloadInterval) when its content changed.
func Watch(path string, interval time.Duration, log zerolog.Logger) (*Watcher, error) {
	if interval <= 0 {
		interval = DefaultReloadInterval
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("acl: %w", err)
	}
	r, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	w := &Watcher{path: path, log: log, quit: make(chan struct{}), done: make(chan struct{}), last: sha256.Sum256(data)}
	w.cur.Store(r)
	log.Info().Str("file", path).Int("accounts", r.Accounts()).Msg("acl: loaded")
	go w.loop(interval)
	return w, nil
}

// Rules returns the rules in force.
func (w *Watcher) Rules() *Rules { return w.cur.Load() }

// Close stops reloading.
func (w *Watcher) Close() error {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	<-w.done
	return nil
}

func (w *Watcher) loop(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-t.C:
			w.check()
		}
	}
}

// check reloads the file if its content changed since the last look.
func (w *Watcher) check() {
	data, err := os.ReadFile(w.path)
	if err != nil {
		var zero [sha256.Size]byte
		if w.last != zero {
			w.log.Error().Err(err).Str("file", w.path).Msg("acl: reload failed; the previous rules stay in force")
			w.last = zero
		}
		return
	}
	sum := sha256.Sum256(data)
	if sum == w.last {
		return
	}
	w.last = sum
	r, err := Parse(data)
	if err != nil {
		w.log.Error().Err(err).Str("file", w.path).Msg("acl: reload failed; the previous rules stay in force")
		return
	}
	w.cur.Store(r)
	w.log.Info().Str("file", w.path).Int("accounts", r.Accounts()).Msg("acl: reloaded")
}
