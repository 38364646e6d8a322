package wire_test

import (
	"fmt"

	"github.com/weftiot/weft/wire"
)

func ExampleAppendBatch() {
	b := &wire.Batch{Agent: "dye-01-gw", Site: "weihai-textile-park", Seq: 1042, Samples: []wire.Sample{
		{Device: "dye-01", Point: "bath_temp", Value: wire.FloatValue(85.2), TS: 1732540800123},
		{Device: "dye-01", Point: "pump_on", Value: wire.BoolValue(true), Quality: wire.Uncertain, Code: 0x40920000, TS: 1732540800123},
	}}
	topics := wire.Topics{Prefix: wire.DefaultPrefix}
	fmt.Println(topics.Data(b.Site, b.Agent))
	fmt.Println(string(wire.AppendBatch(nil, b)))
	// Output:
	// weft/v1/weihai-textile-park/dye-01-gw/data
	// {"v":1,"agent":"dye-01-gw","site":"weihai-textile-park","seq":1042,"samples":[{"device":"dye-01","point":"bath_temp","value":85.2,"quality":"good","ts":1732540800123},{"device":"dye-01","point":"pump_on","value":true,"quality":"uncertain","code":1083310080,"ts":1732540800123}]}
}

func ExampleDecodeBatch() {
	topic := "weft/v1/weihai-textile-park/dye-01-gw/data"
	payload := []byte(`{"v":1,"agent":"dye-01-gw","site":"weihai-textile-park","seq":1042,"samples":[{"device":"dye-01","point":"bath_temp","value":85.2,"quality":"good","ts":1732540800123}]}`)

	site, agent, kind, _, err := wire.ParseTopic(wire.DefaultPrefix, topic)
	if err != nil || kind != wire.KindData {
		fmt.Println(err)
		return
	}
	var b wire.Batch // reuse it for the next message
	if err := wire.DecodeBatch(payload, &b); err != nil {
		fmt.Println(err) // count it by errors.Is(err, wire.ErrMalformed) etc., and drop it
		return
	}
	if err := wire.CheckTopic(&b, site, agent); err != nil {
		fmt.Println(err)
		return
	}
	f, _ := b.Samples[0].Value.Float()
	fmt.Println(b.Seq, b.Samples[0].Device, b.Samples[0].Point, f, b.Samples[0].Quality)

	err = wire.DecodeBatch([]byte(`{"v":2,"agent":"dye-01-gw"}`), &b)
	fmt.Println(err)
	// Output:
	// 1042 dye-01 bath_temp 85.2 good
	// wire: data message: byte 5: v: version "2" is not supported; this build reads version 1
}
