package protocols

import "errors"

// ErrNotConnected is wrapped by a driver's error when its connection is gone
// and the agent must call Connect again before the next Poll.
var ErrNotConnected = errors.New("not connected")
