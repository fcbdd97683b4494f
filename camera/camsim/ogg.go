package camsim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// oggPageHeader is the fixed part of an Ogg page header (RFC 3533 section
// 6), before its segment table.
const oggPageHeader = 27

// oggPackets splits an Ogg stream holding one logical bitstream, as ffmpeg
// writes an Opus file, into its packets (RFC 3533). Pages must carry a
// right CRC, one serial number and consecutive sequence numbers: the input
// is an embedded clip, and anything odd in it is a regenerated file gone
// wrong, better refused at New than played.
func oggPackets(data []byte) ([][]byte, error) {
	var packets [][]byte
	var pending []byte // a packet continued on the next page
	continued := false
	var serial, seq uint32
	for page := 0; len(data) > 0; page++ {
		if len(data) < oggPageHeader || !bytes.Equal(data[:4], []byte("OggS")) {
			return nil, fmt.Errorf("ogg page %d: no capture pattern", page)
		}
		if data[4] != 0 {
			return nil, fmt.Errorf("ogg page %d: version %d", page, data[4])
		}
		flags := data[5]
		pageSerial := binary.LittleEndian.Uint32(data[14:])
		pageSeq := binary.LittleEndian.Uint32(data[18:])
		if page == 0 {
			serial, seq = pageSerial, pageSeq
		} else if pageSerial != serial || pageSeq != seq {
			return nil, fmt.Errorf("ogg page %d: serial %d sequence %d, want %d %d", page, pageSerial, pageSeq, serial, seq)
		}
		seq++
		nsegs := int(data[26])
		if len(data) < oggPageHeader+nsegs {
			return nil, fmt.Errorf("ogg page %d: segment table cut short", page)
		}
		lacing := data[oggPageHeader : oggPageHeader+nsegs]
		size := oggPageHeader + nsegs
		for _, l := range lacing {
			size += int(l)
		}
		if len(data) < size {
			return nil, fmt.Errorf("ogg page %d: %d bytes, want %d", page, len(data), size)
		}
		if got, want := oggCRC(data[:size]), binary.LittleEndian.Uint32(data[22:]); got != want {
			return nil, fmt.Errorf("ogg page %d: CRC %08x, want %08x", page, got, want)
		}
		if (flags&1 != 0) != continued {
			return nil, fmt.Errorf("ogg page %d: continuation flag %v, want %v", page, flags&1 != 0, continued)
		}
		body := data[oggPageHeader+nsegs : size]
		for _, l := range lacing {
			pending = append(pending, body[:l]...)
			body = body[l:]
			// A lacing value under 255 ends a packet; 255 means it goes on.
			if l < 255 {
				packets = append(packets, pending)
				pending = nil
			}
		}
		if nsegs > 0 { // an empty page leaves a packet going on as it was
			continued = lacing[nsegs-1] == 255
		}
		data = data[size:]
	}
	if continued {
		return nil, errors.New("ogg: last packet cut short")
	}
	return packets, nil
}

// oggCRC is the CRC of an Ogg page with its CRC field taken as zero: CRC-32
// with polynomial 0x04c11db7, most significant bit first, no reflection,
// initial value and final XOR zero (RFC 3533 section 6). Bit by bit: the
// pages checked are a few KB, once.
func oggCRC(page []byte) uint32 {
	var crc uint32
	for i, b := range page {
		if i >= 22 && i < 26 {
			b = 0
		}
		crc ^= uint32(b) << 24
		for range 8 {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ 0x04c11db7
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
