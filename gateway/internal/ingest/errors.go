package ingest

import (
	"encoding/json"
	"errors"
)

// Errors of Command.
var (
	// ErrNotConnected: the gateway has no broker connection now.
	ErrNotConnected = errors.New("not connected to the broker")
	// ErrNoReply: the agent did not answer in time.
	ErrNoReply = errors.New("no reply from the agent in time")
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
