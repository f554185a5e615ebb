package consumequeue

// WatchFed returns a doorbell rung whenever FedOffset may have advanced
// (the queues took records, or a listener accepted a batch), and a
// function that removes it. Rings coalesce and may be spurious: after
// each, read FedOffset again. Watch before reading FedOffset so no
// advance between the two is missed.
func (s *Store) WatchFed() (<-chan struct{}, func()) { return s.fed.Watch() }
