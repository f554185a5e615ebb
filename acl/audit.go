package acl

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// DefaultRefusalsPerSecond bounds the refusal lines an Audit writes.
const DefaultRefusalsPerSecond = 20

// Audit writes the audit log: one structured line per admin action and
// per refused request, with the account and the client address. Refusals
// are rate-limited (a client hammering with a wrong key cannot flood the
// log): past the limit in a second they are counted, and the next line
// written says how many were left out. A nil *Audit logs nothing.
type Audit struct {
	log   zerolog.Logger
	limit int
	now   func() time.Time

	mu         sync.Mutex
	windowEnd  time.Time
	inWindow   int
	suppressed int
}

// NewAudit returns an Audit writing to log at most perSecond refusal lines
// a second (0: DefaultRefusalsPerSecond).
func NewAudit(log zerolog.Logger, perSecond int) *Audit {
	if perSecond <= 0 {
		perSecond = DefaultRefusalsPerSecond
	}
	return &Audit{log: log.With().Str("log", "audit").Logger(), limit: perSecond, now: time.Now}
}

// Admin records an admin action that was allowed.
func (a *Audit) Admin(account, remote, via, action string) {
	if a == nil {
		return
	}
	a.log.Info().Str("event", "admin").Str("account", account).Str("remote", remote).
		Str("via", via).Str("action", action).Msg("admin action")
}

// Refused records a refused request; account is the access key the
// request claimed ("" when none).
func (a *Audit) Refused(account, remote, via, action, check, reason string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	now := a.now()
	if now.After(a.windowEnd) {
		a.windowEnd = now.Add(time.Second)
		a.inWindow = 0
	}
	if a.inWindow >= a.limit {
		a.suppressed++
		a.mu.Unlock()
		return
	}
	a.inWindow++
	dropped := a.suppressed
	a.suppressed = 0
	a.mu.Unlock()
	if len(account) > 64 {
		account = account[:64]
	}
	ev := a.log.Warn().Str("event", "refused").Str("account", account).Str("remote", remote).
		Str("via", via).Str("action", action).Str("check", check).Str("reason", reason)
	if dropped > 0 {
		ev = ev.Int("suppressed", dropped)
	}
	ev.Msg("request refused")
}
