package broker

import "time"

// Disk space. Sends are refused while the data disk is fuller than
// DiskMaxUsedRatio, or while a write found it full (the commitlog undoes
// such a write and stays writable, the consume queues try it again, the
// metadata store gives back its reserve: metafs.go) and less than
// diskRoomAfterFull is free (more the reserve, made again on leaving).
// Metadata changes are refused in the state too. The disk is looked at every second, and on a refused send or a
// readiness probe at most every diskRecheck, so sends are accepted again as
// soon as space is freed; reads are served throughout. A write that finds
// the disk full has it looked at at once.

// diskRecheck is how often a refused send may look at the disk again.
const diskRecheck = 200 * time.Millisecond

// diskRoomAfterFull is the free space that ends the state a failed write
// began: room for a largest message and some more.
func (b *Broker) diskRoomAfterFull() uint64 { return uint64(b.cfg.MaxMessageSize) + 1<<20 }

// checkDisk looks at the data disk and updates the disk-full state.
func (b *Broker) checkDisk() {
	b.diskSeen.Store(time.Now().UnixNano())
	u, err := b.fs.GetDiskUsage(b.cfg.DataDir)
	if err != nil || u.TotalBytes == 0 {
		return
	}
	ratio := float64(u.UsedBytes) / float64(u.TotalBytes)
	room := b.diskRoomAfterFull()
	spent := b.meta.reserve.Spent()
	if spent {
		room += metaReserveSize
	}
	full := ratio > b.c().DiskMaxUsedRatio || ((b.clog.NoSpace() || b.cq.NoSpace() || spent) && u.AvailBytes < room)
	if !full && spent {
		if err := b.meta.reserve.restore(); err != nil {
			b.log.Error().Err(err).Msg("make the metadata store's reserve again")
			full = true
		}
	}
	if full != b.diskFull.Load() {
		b.diskFull.Store(full)
		if full {
			b.log.Error().Float64("used_ratio", ratio).Uint64("avail_bytes", u.AvailBytes).Msg("data disk is full: refusing sends")
		} else {
			b.log.Info().Float64("used_ratio", ratio).Uint64("avail_bytes", u.AvailBytes).Msg("data disk has room again: accepting sends")
		}
		b.registrar.trigger()
	}
}

// diskFullNow reports the disk-full state. A write that found the disk
// full has it looked at at once; while the state is full, it is looked at
// again when the last look is older than diskRecheck.
func (b *Broker) diskFullNow() bool {
	full, noSpace := b.diskFull.Load(), b.clog.NoSpace() || b.cq.NoSpace() || b.meta.reserve.Spent()
	if !full && !noSpace {
		return false
	}
	last, now := b.diskSeen.Load(), time.Now().UnixNano()
	if (!full || now-last >= int64(diskRecheck)) && b.diskSeen.CompareAndSwap(last, now) {
		b.checkDisk()
	}
	return b.diskFull.Load()
}

// diskFullReason says why sends are refused in the disk-full state, and
// whether new messages wait to be indexed (readable once there is room).
func (b *Broker) diskFullReason() string {
	if b.cq.NoSpace() {
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
