package ps

// A NAL unit is classified by its header and the byte after it (the first
// byte of the slice header for a slice). start: it begins an access unit
// when it follows a picture; vcl: it is a slice; key: of an IDR (H.264) or
// IRAP (H.265) picture.

// h264NAL classifies an H.264 NAL unit (ITU-T H.264 7.4.1.2.3): an access
// unit begins at a delimiter, SEI, parameter set, type 14-18 unit, or the
// first slice of a picture (first_mb_in_slice 0: its Exp-Golomb code is
// the single bit 1).
func h264NAL(h []byte) (start, vcl, key bool) {
	if h[0]&0x80 != 0 {
		return false, false, false
	}
	switch t := h[0] & 0x1f; t {
	case 1, 2, 5:
		return h[1]&0x80 != 0, true, t == 5
	case 3, 4:
		return false, true, false
	case 6, 7, 8, 9, 14, 15, 16, 17, 18:
		return true, false, false
	}
	return false, false, false
}

// h265NAL classifies an H.265 NAL unit of the base layer (ITU-T H.265
// 7.4.2.4.4): an access unit begins at a parameter set, delimiter, prefix
// SEI, type 41-44 or 48-55 unit, or a slice segment with
// first_slice_segment_in_pic_flag.
func h265NAL(h []byte) (start, vcl, key bool) {
	if h[0]&0x80 != 0 || h[0]&1 != 0 || h[1]>>3 != 0 {
		return false, false, false // forbidden bit, or nuh_layer_id > 0
	}
	switch t := h[0] >> 1; {
	case t <= 31:
		return h[2]&0x80 != 0, true, t >= 16 && t <= 23
	case t >= 32 && t <= 35, t == 39, t >= 41 && t <= 44, t >= 48 && t <= 55:
		return true, false, false
	}
	return false, false, false
}

// guessVideo tells H.264 from H.265 by a NAL unit header, b0 and b1: H.265
// when it reads as a base-layer VPS, SPS, PPS, delimiter, prefix SEI, IDR,
// CRA or TRAIL_R unit (the second byte then is 0x01-0x07, which no H.264
// unit that could come first has after those first bytes), H.264 for a
// slice, IDR slice, SEI, SPS, PPS or delimiter with a valid nal_ref_idc;
// 0 when it cannot tell.
func guessVideo(b0, b1 byte) StreamType {
	if b0&0x80 != 0 {
		return 0
	}
	if b0&1 == 0 && b1>>3 == 0 && b1&7 != 0 {
		switch b0 >> 1 {
		case 1, 19, 20, 21, 32, 33, 34, 35, 39:
			return H265
		}
	}
	// H.264: IDR slices and parameter sets have nal_ref_idc > 0, SEI and
	// delimiters 0 (7.4.1).
	switch ref := b0 >> 5; b0 & 0x1f {
	case 1:
		return H264
	case 5, 7, 8:
		if ref != 0 {
			return H264
		}
	case 6, 9:
		if ref == 0 {
			return H264
		}
	}
	return 0
}

// guessAudio names the coding of an audio PES payload: AAC for an ADTS
// header (sync word 0xFFF, layer 0), MPEG audio for a valid MPEG-1/2 audio
// frame header, else G.711 A-law (which of the two G.711 laws it is cannot
// be told from the samples; GB/T 28181 devices mostly send A-law).
func guessAudio(b []byte) StreamType {
	if len(b) >= 2 && b[0] == 0xFF && b[1]&0xF6 == 0xF0 {
		return AAC
	}
	// MPEG audio: sync, version not reserved, layer not reserved, bitrate
	// neither free nor bad, sampling rate not reserved. µ-law silence
	// (0xFF bytes) fails on the bitrate.
	if len(b) >= 3 && b[0] == 0xFF && b[1]&0xE0 == 0xE0 && b[1]&0x18 != 0x08 && b[1]&0x06 != 0 &&
		b[2]>>4 != 0 && b[2]>>4 != 0xF && b[2]&0x0C != 0x0C {
		if b[1]&0x18 == 0x18 {
			return MPEG1Audio
		}
		return MPEG2Audio
	}
	return G711A
}
