// Package sparkplugpb is the Sparkplug B payload as generated Go protobuf
// code. Package sparkplug wraps it; use that.
package sparkplugpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative sparkplug_b.proto
