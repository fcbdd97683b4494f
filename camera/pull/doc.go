// Package pull brings a camera's stream into a stream.Hub: one upstream
// session per camera stream, kept alive by a Supervisor that reconnects with
// backoff and watches for stalls.
//
// The supervisor reads from a Source (supervisor.go): something it can
// open into a Session that gives the stream's video format (H.264 or H.265)
// and its RTP
// packets, says when it has ended and why, and closes. The RTSP camera
// (RTSP, rtsp.go) is the one source today, with two client libraries behind
// it (rtsp_gortsplib.go, rtsp_vdk.go); the sources to come (ONVIF-resolved
// RTSP, GB/T 28181 PS over RTP, a relay from the node that owns the camera)
// are new Source types, and the supervisor does not change for them.
//
// Pictures are rebuilt from RTP packets here (assembler.go), whichever
// source brings them: our own depacketiser (depack.go: RFC 6184 single NAL
// unit, STAP-A and FU-A; RFC 7798 single NAL unit, AP and FU; whole access
// units by marker and timestamp; fragment-loss detection; no cap of 25 or
// 21 NAL units a picture as mediacommon's decoders have, so cameras that
// send many slices work) plus a sequence-number loss detector, after which
// everything up to the next keyframe is dropped, so no viewer sees a
// picture smeared by a lost packet. Keyframes are found from NAL unit
// types (H.264 IDR, H.265 IRAP); the keyframe watchdog learns each
// camera's GOP (keywatch.go); timestamps are
// unwrapped to 64 bits and rebased onto one continuous timeline
// (timeline.go) that runs on across reconnects.
//
// Two RTSP clients can bring the packets (Config.Client):
//
//   - gortsplib's client, the default. It is a well-kept RTSP client with
//     contexts, timeouts, Basic and Digest authentication and keep-alives,
//     and it cannot be crashed by what a camera sends.
//   - deepch/vdk's rtspv2 client, which the design started from and which
//     some installations know. Its depacketiser is not used: it flags
//     keyframes only when the IDR is not inside a STAP-A packet, makes one
//     packet per NAL unit (a multi-slice picture becomes several frames),
//     hands out raw RTP timestamps that wrap after 13¼ hours, and joins
//     FU-A fragments across a lost packet into a corrupt picture. We take
//     its raw RTP packets (the OutgoingProxy queue) instead, and drain every
//     one of its channels at once, since it drops a camera whose queue fills
//     and its reader blocks on a full Signals channel.
//
// Why vdk is not the default: three of its defects cannot be guarded from
// outside. Its reader goroutine panics on some malformed input (an RTP
// packet whose padding length exceeds it; a negative Content-Length), and a
// panic in a goroutine we do not own cannot be recovered, so one broken
// camera would stop the whole service. Its Dial leaves the connection open
// when a request fails (a wrong password leaks a camera connection per
// retry, and cameras accept few). And its keep-alive writes race with
// Close. Two more are guarded here: one read/write timeout bounds both its
// handshake and its streaming reads (the handshake is bounded from outside,
// by the dial timeout a request), and it takes a zero timeout as none left.
// gortsplib meets those requirements; vdk is kept behind the same
// assembler for cameras that need it (--rtsp-client vdk), H.264 and H.265
// alike, since only its raw packets are used.
package pull
