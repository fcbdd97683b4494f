package manscdp

// Codes (IDs) are 20 decimal digits (GB/T 28181-2016 Annex D):
//
//	digits  1-8   centre code: 1-2 province, 3-4 city, 5-6 district
//	              (together the GB/T 2260 civil code), 7-8 grass-roots unit
//	digits  9-10  industry code (00 public security road, ...)
//	digits 11-13  type code, below
//	digit  14     network (0-4 surveillance private network, 5 police
//	              network, 6 government network, 7 Internet, 8 social
//	              resources network, 9 reserved)
//	digits 15-20  serial number
//
// Civil-code nodes of a catalog have 2-, 4-, 6- or 8-digit IDs and are
// not valid codes here.

// Type codes (Annex D, Table D.1). 111-130 are front-end main devices
// (119-130 reserved for extension), 131-199 front-end peripherals
// (140-199 extension), 200-299 platform devices (217-299 extension),
// 300-399 centre users, 400-499 terminal users, 500-999 extension.
const (
	TypeDVR               = 111 // digital video recorder
	TypeVideoServer       = 112
	TypeEncoder           = 113
	TypeDecoder           = 114
	TypeVideoMatrix       = 115
	TypeAudioMatrix       = 116
	TypeAlarmController   = 117
	TypeNVR               = 118
	TypeCamera            = 131 // a video channel
	TypeIPC               = 132 // network camera; a video channel
	TypeDisplay           = 133
	TypeAlarmInput        = 134
	TypeAlarmOutput       = 135
	TypeAudioInput        = 136
	TypeAudioOutput       = 137
	TypeMobileTransmitter = 138
	TypeOtherPeripheral   = 139
	TypeSIPServer         = 200 // centre signalling control server
	TypeWebServer         = 201
	TypeMediaServer       = 202 // media distribution
	TypeProxyServer       = 203
	TypeSecurityServer    = 204
	TypeAlarmServer       = 205
	TypeDatabaseServer    = 206
	TypeGISServer         = 207
	TypeManagementServer  = 208
	TypeGateway           = 209 // access gateway
	TypeStorageServer     = 210 // media storage
	TypeSecurityGateway   = 211 // signalling security routing gateway
	TypeBusinessGroup     = 215
	TypeVirtualOrg        = 216 // virtual organisation
	TypeCentreUser        = 300
	TypeTerminalUser      = 400
)

// ValidID reports whether id is a 20-digit code.
func ValidID(id string) bool {
	if len(id) != 20 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

// IDType is the type field of a code (digits 11-13), or 0 when id is not
// a valid code.
func IDType(id string) int {
	if !ValidID(id) {
		return 0
	}
	return int(id[10]-'0')*100 + int(id[11]-'0')*10 + int(id[12]-'0')
}

// CivilCode is the GB/T 2260 administrative division of a code: its
// first 6 digits (province, city, district), or "" when id is not valid.
// A centre at city or province level has 00 for the levels below.
func CivilCode(id string) string {
	if !ValidID(id) {
		return ""
	}
	return id[:6]
}

// CentreCode is the centre code of a code: its first 8 digits, the civil
// code and the grass-roots unit, or "" when id is not valid.
func CentreCode(id string) string {
	if !ValidID(id) {
		return ""
	}
	return id[:8]
}

// IndustryCode is the industry field of a code (digits 9-10), or "" when
// id is not valid.
func IndustryCode(id string) string {
	if !ValidID(id) {
		return ""
	}
	return id[8:10]
}
