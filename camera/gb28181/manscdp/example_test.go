package manscdp_test

import (
	"fmt"
	"strings"

	"gridwatch/camera/gb28181/manscdp"
)

// A device answers a catalog query.
func ExampleMessage_CatalogReplies() {
	q, err := manscdp.Decode([]byte(`<?xml version="1.0" encoding="GB2312"?>
<Query><CmdType>Catalog</CmdType><SN>7</SN><DeviceID>34020000001180000001</DeviceID></Query>`))
	if err != nil {
		panic(err)
	}
	items := []manscdp.Item{{
		DeviceID: "34020000001310000001", Name: "东门", Parental: "0", RegisterWay: "1", Secrecy: "0", Status: "ON",
		Longitude: "117.227239", Latitude: "31.820587", Info: &manscdp.ItemInfo{PTZType: "1"},
	}}
	for _, r := range q.CatalogReplies(items, 20) {
		body, err := manscdp.Encode(r, "UTF-8")
		if err != nil {
			panic(err)
		}
		fmt.Print(strings.ReplaceAll(string(body), "\r\n", "\n"))
	}
	// Output:
	// <?xml version="1.0" encoding="UTF-8"?>
	// <Response>
	// <CmdType>Catalog</CmdType>
	// <SN>7</SN>
	// <DeviceID>34020000001180000001</DeviceID>
	// <SumNum>1</SumNum>
	// <DeviceList Num="1">
	// <Item>
	// <DeviceID>34020000001310000001</DeviceID>
	// <Name>东门</Name>
	// <Parental>0</Parental>
	// <RegisterWay>1</RegisterWay>
	// <Secrecy>0</Secrecy>
	// <Status>ON</Status>
	// <Longitude>117.227239</Longitude>
	// <Latitude>31.820587</Latitude>
	// <Info>
	// <PTZType>1</PTZType>
	// </Info>
	// </Item>
	// </DeviceList>
	// </Response>
}

// The platform turns a camera right.
func ExamplePTZ() {
	m := manscdp.PTZControl("34020000001310000001", 11, manscdp.PTZ{Pan: 1, PanSpeed: 0x80, Addr: 1})
	fmt.Println(m.PTZCmd)
	p, err := manscdp.ParsePTZCmd("A50F01820003003A")
	fmt.Println(p.PresetOp == manscdp.PresetCall, p.Preset, err)
	// Output:
	// A50F010180000036
	// true 3 <nil>
}
