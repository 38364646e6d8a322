package wire

import (
	"encoding/json"
	"fmt"
)

// Size limits of the control messages. A decoder rejects a larger message with
// an error wrapping ErrTooLarge.
const (
	MaxStatusBytes = 4 << 20 // the points of 10,000 tags take about 0.6 MiB
	// MaxUnitBytes is the longest unit or data type of a point in a status.
	MaxUnitBytes    = 64
	MaxHealthBytes  = 4 << 20 // thousands of devices
	MaxCommandBytes = 4 << 20 // a config command carries a whole config file
	MaxReplyBytes   = 8 << 20 // a status reply carries a Health
)

// Status, Health, Command and Reply are small and rare next to data batches:
// they use encoding/json. Encode them with json.Marshal; decode them with the
// functions below, which add the size limit, the version check and the
// validation a receiver needs. Unknown keys are ignored, as in data messages.

// DecodeStatus decodes and checks a status message.
func DecodeStatus(data []byte, s *Status) error {
	*s = Status{}
	if err := decodeControl("status", data, MaxStatusBytes, s); err != nil {
		return err
	}
	if err := checkOrigin("status", s.Site, s.Agent); err != nil {
		return err
	}
	if s.State != Online && s.State != Offline {
		return malformedf("status", "state %q; want %q or %q", s.State, Online, Offline)
	}
	return checkPoints(s.Points)
}

// checkPoints checks the point descriptions of a status: names as in data
// messages, units and types short.
func checkPoints(devs []DevicePoints) error {
	for i, d := range devs {
		if err := checkName(d.Device); err != nil {
			return malformedf("status", "points[%d].device: %v", i, err)
		}
		for j, p := range d.Points {
			if err := checkName(p.Name); err != nil {
				return malformedf("status", "points[%d] %q: points[%d].name: %v", i, d.Device, j, err)
			}
			if len(p.Unit) > MaxUnitBytes {
				return malformedf("status", "points[%d] %q: point %q: unit is %d bytes, the limit is %d", i, d.Device, p.Name, len(p.Unit), MaxUnitBytes)
			}
			if len(p.Type) > MaxUnitBytes {
				return malformedf("status", "points[%d] %q: point %q: type is %d bytes, the limit is %d", i, d.Device, p.Name, len(p.Type), MaxUnitBytes)
			}
		}
	}
	return nil
}

// checkName checks a device or point name the way data messages do.
func checkName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("must not be empty")
	case len(s) > MaxNameBytes:
		return fmt.Errorf("%d bytes, the limit is %d", len(s), MaxNameBytes)
	}
	return nil
}

// DecodeHealth decodes and checks a health message.
func DecodeHealth(data []byte, h *Health) error {
	*h = Health{}
	if err := decodeControl("health", data, MaxHealthBytes, h); err != nil {
		return err
	}
	if err := checkOrigin("health", h.Site, h.Agent); err != nil {
		return err
	}
	return checkDevices("health", h.Devices)
}

// DecodeCommand decodes and checks a command. Name and ID must be valid
// topic levels (the reply goes to …/reply/{id}); a config command must carry
// a config. An unknown Name is not an error here: the agent answers it with
// a Reply that says so.
func DecodeCommand(data []byte, c *Command) error {
	*c = Command{}
	if err := decodeControl("command", data, MaxCommandBytes, c); err != nil {
		return err
	}
	if err := CheckLevel(c.ID); err != nil {
		return malformedf("command", "id: %v", err)
	}
	if err := CheckLevel(c.Name); err != nil {
		return malformedf("command", "name: %v", err)
	}
	if c.Name == CmdConfig && c.Config == "" {
		return malformedf("command", "a %q command needs a config", CmdConfig)
	}
	return nil
}

// DecodeReply decodes and checks a reply.
func DecodeReply(data []byte, r *Reply) error {
	*r = Reply{}
	if err := decodeControl("reply", data, MaxReplyBytes, r); err != nil {
		return err
	}
	if err := CheckLevel(r.ID); err != nil {
		return malformedf("reply", "id: %v", err)
	}
	if !r.OK && r.Error == "" && len(r.Errors) == 0 {
		return malformedf("reply", "ok is false but there is no error")
	}
	if r.Health != nil {
		if err := checkOrigin("reply health", r.Health.Site, r.Health.Agent); err != nil {
			return err
		}
		if err := checkDevices("reply health", r.Health.Devices); err != nil {
			return err
		}
	}
	return nil
}

func malformedf(what, format string, args ...any) error {
	return fmt.Errorf("wire: %s message: %w: %s", what, ErrMalformed, fmt.Sprintf(format, args...))
}

// decodeControl checks the size, then the version, then decodes into v.
// The version is read on its own first, so that a message of another version
// is reported as such even when its shape changed.
func decodeControl(what string, data []byte, limit int, v any) error {
	if len(data) > limit {
		return fmt.Errorf("wire: %s message: %w: %d bytes, the limit is %d", what, ErrTooLarge, len(data), limit)
	}
	var probe struct {
		V *json.RawMessage `json:"v"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return fmt.Errorf("wire: %s message: %w: %v", what, ErrMalformed, err)
	}
	if probe.V == nil {
		return malformedf(what, `missing key "v"`)
	}
	if string(*probe.V) != fmt.Sprint(Version) {
		return fmt.Errorf("wire: %s message: %w: version %s is not supported; this build reads version %d",
			what, ErrVersion, *probe.V, Version)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("wire: %s message: %w: %v", what, ErrMalformed, err)
	}
	return nil
}

func checkOrigin(what, site, agent string) error {
	if err := CheckLevel(site); err != nil {
		return malformedf(what, "site: %v", err)
	}
	if err := CheckLevel(agent); err != nil {
		return malformedf(what, "agent: %v", err)
	}
	return nil
}

func checkDevices(what string, devs []DeviceHealth) error {
	for i, d := range devs {
		if d.ID == "" {
			return malformedf(what, "devices[%d]: id is empty", i)
		}
		switch d.State {
		case DeviceOK, DeviceDegraded, DeviceDown:
		default:
			return malformedf(what, "devices[%d] %q: state %q; want %q, %q or %q", i, d.ID, d.State, DeviceOK, DeviceDegraded, DeviceDown)
		}
	}
	return nil
}
