package sparkplug

import (
	"testing"
	"time"

	"github.com/weftiot/weft/wire"
	spb "github.com/weftiot/weft/wire/sparkplug"
	pb "github.com/weftiot/weft/wire/sparkplug/sparkplugpb"
)

// FuzzTracker feeds a born node arbitrary messages on arbitrary topics, as a
// broker could deliver them: the host may refuse or ask for a rebirth,
// never panic, and every sample it makes names a device and a point.
func FuzzTracker(f *testing.F) {
	seed := func(topic string, p *spb.Payload) {
		b, err := spb.Encode(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(topic, b)
	}
	seed("spBv1.0/plant/NBIRTH/node1", nbirth(0, 1, met("a", 1, pb.DataType_Int64, wire.IntValue(1))))
	seed("spBv1.0/plant/DBIRTH/node1/d", pay(1, met("b", 2, pb.DataType_String, wire.StringValue("x"))))
	seed("spBv1.0/plant/DDATA/node1/d", pay(2, met("", 2, pb.DataType_String, wire.StringValue("y"))))
	seed("spBv1.0/plant/NDEATH/node1", pay(-1, met(spb.MetricBdSeq, 0, pb.DataType_Int64, wire.IntValue(1))))
	f.Add("spBv1.0/plant/NDATA/node1", []byte{0x18, 0x01, 0x12, 0x04, 0x10, 0x01, 0x50, 0x05})
	f.Fuzz(func(t *testing.T, topic string, b []byte) {
		tr := newTracker()
		born, _ := spb.Encode(nbirth(0, 1, met("a", 1, pb.DataType_Int64, wire.IntValue(1))))
		for _, msg := range []struct {
			topic string
			b     []byte
		}{{"spBv1.0/plant/NBIRTH/node1", born}, {topic, b}, {topic, b}} {
			tp, err := spb.ParseTopic(msg.topic)
			if err != nil || tp.Type == spb.STATE {
				continue
			}
			p, err := spb.Decode(msg.b)
			if err != nil {
				continue
			}
			out := tr.handle(tp, p, time.UnixMilli(1))
			if out.batch != nil {
				for _, s := range out.batch.Samples {
					if s.Device == "" || s.Point == "" {
						t.Fatalf("sample without a device or point: %+v", s)
					}
				}
			}
		}
	})
}
