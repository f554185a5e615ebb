package broker

import (
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"
)

// Disk space. Sends are refused while the data disk is fuller than
// DiskMaxUsedRatio, or while a write found it full (the commitlog undoes
// such a write and stays writable, the consume queues try it again, the
// metadata store gives back its reserve: metafs.go) and less than
// roomAfterFull is free (more the reserve, made again on leaving).
// Metadata changes are refused in the state too. The disk is looked at every second, and on a refused send or a
// readiness probe at most every diskRecheck, so sends are accepted again as
// soon as space is freed; reads are served throughout. A write that finds
// the disk full has it looked at at once.

// diskRecheck is how often a refused send may look at the disk again.
const diskRecheck = 200 * time.Millisecond

// diskGuard keeps the disk-full state of the data disk: it looks at the
// disk (check) and says whether sends and metadata changes are refused
// (fullNow) and why (reason).
type diskGuard struct {
	fs   vfs.FS
	dir  string         // the data directory, whose disk is looked at
	conf func() *Config // DiskMaxUsedRatio in force
	// roomAfterFull is the free space that ends the state a failed write
	// began: room for a largest message and some more.
	roomAfterFull uint64
	clog, cq      noSpacer    // the commitlog and consume queues: a write found the disk full
	reserve       metaReserve // the metadata store's reserve (metafs.go)
	changed       func()      // called when the state flips: re-register
	log           zerolog.Logger

	full atomic.Bool  // sends refused for want of disk space
	seen atomic.Int64 // unix nanoseconds of the last look at the disk
}

// noSpacer reports whether a write found the disk full.
type noSpacer interface{ NoSpace() bool }

// metaReserve is the metadata store's reserve as the guard uses it.
type metaReserve interface {
	Spent() bool
	restore() error
}

func newDiskGuard(b *Broker) *diskGuard {
	return &diskGuard{
		fs: b.fs, dir: b.cfg.DataDir, conf: b.c, roomAfterFull: uint64(b.cfg.MaxMessageSize) + 1<<20,
		clog: b.clog, cq: b.cq, reserve: b.meta.reserve, changed: b.registrar.trigger, log: b.log,
	}
}

// check looks at the data disk and updates the disk-full state.
func (g *diskGuard) check() {
	g.seen.Store(time.Now().UnixNano())
	u, err := g.fs.GetDiskUsage(g.dir)
	if err != nil || u.TotalBytes == 0 {
		return
	}
	ratio := float64(u.UsedBytes) / float64(u.TotalBytes)
	room := g.roomAfterFull
	spent := g.reserve.Spent()
	if spent {
		room += metaReserveSize
	}
	full := ratio > g.conf().DiskMaxUsedRatio || ((g.clog.NoSpace() || g.cq.NoSpace() || spent) && u.AvailBytes < room)
	if !full && spent {
		if err := g.reserve.restore(); err != nil {
			g.log.Error().Err(err).Msg("make the metadata store's reserve again")
			full = true
		}
	}
	if full != g.full.Load() {
		g.full.Store(full)
		if full {
			g.log.Error().Float64("used_ratio", ratio).Uint64("avail_bytes", u.AvailBytes).Msg("data disk is full: refusing sends")
		} else {
			g.log.Info().Float64("used_ratio", ratio).Uint64("avail_bytes", u.AvailBytes).Msg("data disk has room again: accepting sends")
		}
		g.changed()
	}
}

// fullNow reports the disk-full state. A write that found the disk
// full has it looked at at once; while the state is full, it is looked at
// again when the last look is older than diskRecheck.
func (g *diskGuard) fullNow() bool {
	full, noSpace := g.full.Load(), g.clog.NoSpace() || g.cq.NoSpace() || g.reserve.Spent()
	if !full && !noSpace {
		return false
	}
	last, now := g.seen.Load(), time.Now().UnixNano()
	if (!full || now-last >= int64(diskRecheck)) && g.seen.CompareAndSwap(last, now) {
		g.check()
	}
	return g.full.Load()
}

// reason says why sends are refused in the disk-full state, and
// whether new messages wait to be indexed (readable once there is room).
func (g *diskGuard) reason() string {
	if g.cq.NoSpace() {
		return "data disk is full; new messages are indexed once it has room"
	}
	return "data disk is full"
}

// readiness says whether the broker is ready to serve, with the text of
// the readiness probe. Ready means able to serve: a broker that refuses
// sends (drained, disk full) still serves reads, so it is ready and says
// why sends are refused; asked about sends too (forSend), it is not ready
// then, for a probe that should route only producers.
func (b *Broker) readiness(forSend bool) (bool, string) {
	if !b.ready.Load() || !b.accepting.Load() {
		return false, "not ready: starting or shutting down"
	}
	why := b.writable()
	switch {
	case why == "":
		return true, "ok"
	case forSend:
		return false, "not ready for sends: " + why
	}
	return true, "ok: serving reads; sends refused: " + why
}
