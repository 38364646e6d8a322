package modbus

import "github.com/weftiot/weft/wire"

// ErrorsByKind implements protocols.ErrorKinds from the driver's Stats:
// timeout, io, frame, exception (every code together; Stats has them by
// code) and bad_value. Kinds never counted are left out.
func (d *Driver) ErrorsByKind() map[string]uint64 {
	d.mu.Lock()
	s := &d.stats
	var exceptions uint64
	for _, n := range s.Exceptions {
		exceptions += n
	}
	all := [...]struct {
		kind string
		n    uint64
	}{
		{wire.ErrorTimeout, s.Timeouts},
		{wire.ErrorIO, s.IO},
		{wire.ErrorFrame, s.Frames},
		{wire.ErrorException, exceptions},
		{wire.ErrorBadValue, s.BadValues},
	}
	d.mu.Unlock()
	m := make(map[string]uint64, len(all))
	for _, k := range all {
		if k.n > 0 {
			m[k.kind] = k.n
		}
	}
	return m
}
