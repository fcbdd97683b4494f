package manscdp

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Bodies as devices and platforms send them. They are written here in
// UTF-8; gbBytes turns the ones declared GB into GB bytes.

const catalogBody = `<?xml version="1.0" encoding="GB2312"?>
<Response>
<CmdType>Catalog</CmdType>
<SN>248</SN>
<DeviceID>34020000001180000001</DeviceID>
<SumNum>2</SumNum>
<DeviceList Num="2">
<Item>
<DeviceID>34020000001310000001</DeviceID>
<Name>东门入口球机</Name>
<Manufacturer>海康威视</Manufacturer>
<Model>DS-2DE4425IW</Model>
<Owner>Owner</Owner>
<CivilCode>340200</CivilCode>
<Address>合肥市蜀山区长江西路</Address>
<Parental>0</Parental>
<ParentID>34020000001180000001</ParentID>
<SafetyWay>0</SafetyWay>
<RegisterWay>1</RegisterWay>
<Secrecy>0</Secrecy>
<IPAddress>192.168.1.64</IPAddress>
<Port>5060</Port>
<Status>ON</Status>
<Longitude>117.227239</Longitude>
<Latitude>31.820587</Latitude>
<Info>
<PTZType>1</PTZType>
<Resolution>6/4</Resolution>
</Info>
</Item>
<Item>
<DeviceID>34020000001320000002</DeviceID>
<Name>停车场（北）</Name>
<Manufacturer>大华</Manufacturer>
<Parental>0</Parental>
<RegisterWay>1</RegisterWay>
<Secrecy>0</Secrecy>
<Status>OFF</Status>
<Longitude>0</Longitude>
<Latitude>0</Latitude>
</Item>
</DeviceList>
</Response>
`

// A device of another kind: UTF-8 with a BOM, CRLF, unknown elements
// (vendor extensions), numbers with spaces, names in other cases, a bare
// '&', PTZType outside Info, a garbage Port in an item.
const catalogLooseBody = "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\" ?>\r\n" +
	"<!-- vendor firmware 5.5 -->\r\n" +
	"<Response>\r\n" +
	"  <CmdType>Catalog</CmdType>\r\n" +
	"  <SN>\r\n 17 \r\n</SN>\r\n" +
	"  <DeviceId>34020000001180000001</DeviceId>\r\n" +
	"  <Vendor><Extension a=\"1\"><Deep>x</Deep></Extension></Vendor>\r\n" +
	"  <Sumnum> 1 </Sumnum>\r\n" +
	"  <DeviceList Num=\" 1 \">\r\n" +
	"    <Item>\r\n" +
	"      <DeviceID> 34020000001310000005 </DeviceID>\r\n" +
	"      <Name>R&D 实验室 &amp; 走廊 &#x6444;&#20687;</Name>\r\n" +
	"      <PTZType>3</PTZType>\r\n" +
	"      <Port>none</Port>\r\n" +
	"      <Status>online</Status>\r\n" +
	"      <Longitude> 121.4737 </Longitude><Latitude>31.2304</Latitude>\r\n" +
	"      <Unknown><Nested>1</Nested></Unknown>\r\n" +
	"    </Item>\r\n" +
	"  </DeviceList>\r\n" +
	"</Response>\r\n\x00\x00"

const keepaliveBody = `<?xml version="1.0" encoding="GB2312"?>
<Notify>
<CmdType>Keepalive</CmdType>
<SN>43</SN>
<DeviceID>34020000001180000001</DeviceID>
<Status>OK</Status>
<Info>
<DeviceID>34020000001310000002</DeviceID>
<DeviceID>34020000001310000003</DeviceID>
</Info>
</Notify>
`

const deviceInfoBody = `<?xml version="1.0" encoding="GB2312"?>
<Response>
<CmdType>DeviceInfo</CmdType>
<SN>5</SN>
<DeviceID>34020000001180000001</DeviceID>
<DeviceName>一号楼录像机</DeviceName>
<Result>OK</Result>
<Manufacturer>Hikvision</Manufacturer>
<Model>DS-7808N-K1</Model>
<Firmware>V4.30.005 build 200101</Firmware>
<Channel>8</Channel>
</Response>
`

const deviceStatusBody = `<?xml version="1.0" encoding="GB2312"?>
<Response>
<CmdType>DeviceStatus</CmdType>
<SN>12</SN>
<DeviceID>34020000001320000001</DeviceID>
<Result>OK</Result>
<Online>ONLINE</Online>
<Status>OK</Status>
<Encode>ON</Encode>
<Record>OFF</Record>
<DeviceTime>2026-12-05T10:11:12</DeviceTime>
<Alarmstatus Num="2">
<Item>
<DeviceID>34020000001340000001</DeviceID>
<DutyStatus>OFFDUTY</DutyStatus>
</Item>
<Item>
<DeviceID>34020000001340000002</DeviceID>
<DutyStatus>ALARM</DutyStatus>
</Item>
</Alarmstatus>
</Response>
`

const recordQueryBody = `<?xml version="1.0" encoding="GB2312"?>
<Query>
<CmdType>RecordInfo</CmdType>
<SN>9</SN>
<DeviceID>34020000001310000001</DeviceID>
<StartTime>2026-12-05T00:00:00</StartTime>
<EndTime>2026-12-05T23:59:59</EndTime>
<Secrecy>0</Secrecy>
<Type>all</Type>
</Query>
`

const recordBody = `<?xml version="1.0" encoding="GB2312"?>
<Response>
<CmdType>RecordInfo</CmdType>
<SN>9</SN>
<DeviceID>34020000001310000001</DeviceID>
<Name>东门入口球机</Name>
<SumNum>2</SumNum>
<RecordList Num="2">
<Item>
<DeviceID>34020000001310000001</DeviceID>
<Name>东门入口球机</Name>
<FilePath>/record/ch1/0000.ps</FilePath>
<Address>合肥</Address>
<StartTime>2026-12-05T00:00:00</StartTime>
<EndTime>2026-12-05T01:00:00</EndTime>
<Secrecy>0</Secrecy>
<Type>time</Type>
<FileSize>524288000</FileSize>
</Item>
<Item>
<DeviceID>34020000001310000001</DeviceID>
<Name>东门入口球机</Name>
<StartTime>2026-12-05T01:00:00</StartTime>
<EndTime>2026-12-05T01:10:00</EndTime>
<Secrecy>0</Secrecy>
<Type>alarm</Type>
<RecorderID>34020000001180000001</RecorderID>
</Item>
</RecordList>
</Response>
`

const alarmBody = `<?xml version="1.0" encoding="GB2312"?>
<Notify>
<CmdType>Alarm</CmdType>
<SN>77</SN>
<DeviceID>34020000001310000001</DeviceID>
<AlarmPriority>1</AlarmPriority>
<AlarmMethod>5</AlarmMethod>
<AlarmTime>2026-12-05T10:11:12</AlarmTime>
<AlarmDescription>区域入侵</AlarmDescription>
<Longitude>117.227239</Longitude>
<Latitude>31.820587</Latitude>
<Info>
<AlarmType>6</AlarmType>
<AlarmTypeParam>
<EventType>1</EventType>
</AlarmTypeParam>
</Info>
</Notify>
`

const catalogNotifyBody = `<?xml version="1.0" encoding="GB2312"?>
<Notify>
<CmdType>Catalog</CmdType>
<SN>30</SN>
<DeviceID>34020000001180000001</DeviceID>
<SumNum>2</SumNum>
<DeviceList Num="2">
<Item>
<DeviceID>34020000001310000001</DeviceID>
<Event>OFF</Event>
</Item>
<Item>
<DeviceID>34020000001310000009</DeviceID>
<Event>ADD</Event>
<Name>新增通道</Name>
<Manufacturer>Uniview</Manufacturer>
<Parental>0</Parental>
<ParentID>34020000001180000001</ParentID>
<RegisterWay>1</RegisterWay>
<Secrecy>0</Secrecy>
<Status>ON</Status>
</Item>
</DeviceList>
</Notify>
`

const controlBody = `<?xml version="1.0" encoding="GB2312"?>
<Control>
<CmdType>DeviceControl</CmdType>
<SN>11</SN>
<DeviceID>34020000001310000001</DeviceID>
<PTZCmd>A50F010180000036</PTZCmd>
<Info>
<ControlPriority>5</ControlPriority>
</Info>
</Control>
`

const mobilePositionBody = `<?xml version="1.0" encoding="UTF-8"?>
<Notify>
<CmdType>MobilePosition</CmdType>
<SN>3</SN>
<DeviceID>34020000001380000001</DeviceID>
<Time>2026-12-05T10:11:12</Time>
<Longitude>116.397128</Longitude>
<Latitude>39.916527</Latitude>
<Speed>36.5</Speed>
<Direction>90</Direction>
<Altitude>52</Altitude>
</Notify>
`

// gbBytes is s in GB2312 (GBK, its superset, for the encoder): what a
// device sends. It fails the test when s has a character GBK lacks.
func gbBytes(t testing.TB, s string) []byte {
	t.Helper()
	b, err := encoding.ReplaceUnsupported(simplifiedchinese.GBK.NewEncoder()).Bytes([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "\x1a") {
		t.Fatalf("%q has characters GBK lacks", s)
	}
	return b
}

// fixtures are all the bodies, as sent: the GB-declared ones in GB bytes.
func fixtures(t testing.TB) map[string][]byte {
	file, err := os.ReadFile("testdata/catalog_gb2312.xml")
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"catalog":         gbBytes(t, catalogBody),
		"catalog-file":    file,
		"catalog-utf8":    []byte(strings.Replace(catalogBody, "GB2312", "UTF-8", 1)),
		"catalog-lying":   []byte(catalogBody), // declared GB2312, sent UTF-8
		"catalog-loose":   []byte(catalogLooseBody),
		"catalog-notify":  gbBytes(t, catalogNotifyBody),
		"keepalive":       gbBytes(t, keepaliveBody),
		"device-info":     gbBytes(t, deviceInfoBody),
		"device-status":   gbBytes(t, deviceStatusBody),
		"record-query":    gbBytes(t, recordQueryBody),
		"record":          gbBytes(t, recordBody),
		"alarm":           gbBytes(t, alarmBody),
		"control":         gbBytes(t, controlBody),
		"mobile-position": []byte(mobilePositionBody),
		"gb18030":         gb18030Bytes(t, strings.Replace(deviceInfoBody, "GB2312", "GB18030", 1)),
	}
}

// gb18030Bytes is s in GB18030, with a character (📷) only GB18030 has.
func gb18030Bytes(t testing.TB, s string) []byte {
	t.Helper()
	b, err := simplifiedchinese.GB18030.NewEncoder().Bytes([]byte(strings.Replace(s, "录像机", "录像机📷", 1)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
