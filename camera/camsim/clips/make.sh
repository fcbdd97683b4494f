#!/bin/sh
# Regenerates the clips that package camsim embeds: the H.264 and H.265
# Annex-B video clips, and the audio clips of the streams with audio.
# Every video clip: 25 fps, 4 s (100 frames), an IDR every 25 frames (1 s
# GOP, no scene-cut keyframes), no B-frames (baseline), SPS+PPS repeated
# before every IDR (repeat-headers), x264's version SEI removed
# (filter_units), one thread so the output does not depend on the machine.
# The H.265 clip: the same with x265 (closed GOPs, so every keyframe is an
# IDR; prefix and suffix SEI removed; no thread pools).
# Usage: camera/camsim/clips/make.sh [video|audio]   (default both; video
# needs ffmpeg with libx264 and libx265, audio ffmpeg 5.1 or later, for
# noise=drop expressions, with libopus).
# Each step only rewrites its own files, so the audio can be remade without
# touching the video clips the tests compare bit for bit.
set -eu
cd "$(dirname "$0")"
step=${1:-all}

video() {
	x264='keyint=25:min-keyint=25:scenecut=0:bframes=0:repeat-headers=1'

	enc() { # enc OUT SIZE BITRATE EXTRA_X264_PARAMS
		ffmpeg -hide_banner -loglevel error -y \
			-f lavfi -i "testsrc2=size=$2:rate=25:duration=4" \
			-an -pix_fmt yuv420p -threads 1 \
			-c:v libx264 -profile:v baseline -preset medium \
			-b:v "$3" -maxrate "$3" -bufsize "$3" \
			-x264-params "$x264$4" \
			-bsf:v filter_units=remove_types=6 \
			-f h264 "$1"
	}

	enc main.h264 640x360 480k ''
	enc sub.h264 320x180 150k ''
	enc slices.h264 640x360 480k ':slices=4'
	# More NAL units a picture than mediacommon's RTP decoders accept (25);
	# x264 makes at most one slice a macroblock row with slices=N.
	enc slices32.h264 640x360 480k ':slice-max-mbs=29'  # 920 macroblocks: 32 slices

	ffmpeg -hide_banner -loglevel error -y \
		-f lavfi -i "testsrc2=size=640x360:rate=25:duration=4" \
		-an -pix_fmt yuv420p -threads 1 \
		-c:v libx265 -preset medium -b:v 480k \
		-x265-params "keyint=25:min-keyint=25:scenecut=0:bframes=0:repeat-headers=1:open-gop=0:info=0:pools=none:frame-threads=1:log-level=error" \
		-bsf:v 'filter_units=remove_types=39|40' \
		-f hevc main.h265
	ls -l main.h264 sub.h264 slices.h264 slices32.h264 main.h265
}

# Audio: a 1 kHz beep of 100 ms at the start of every second, digital
# silence otherwise, so the beeps line up with the video's keyframes (one a
# second). Two clips, each a whole number of codec frames that is also a
# whole number of seconds, so that looping them never drifts:
#   beep.aac   ADTS, AAC-LC 16000 Hz mono at 32 kbit/s (silence takes far
#              less: 7 KB in all), 125 frames of 1024
#              samples = 8 s (4 s would be 62.5 frames, so the clip spans
#              two video loops; the content repeats every second anyway).
#   beep.opus  Ogg Opus 48 kHz mono at 24 kbit/s (17 KB), 200 packets of
#              20 ms = 4 s.
# Encoders delay their output: ffmpeg's AAC encoder by 1024 samples (one
# frame of priming), libopus by its 312-sample look-ahead (the pre-skip in
# OpusHead, which camsim checks). The source is started that much early
# (t+D below), so that frame k decodes, without any trimming, to samples
# k*frame.. of the beep pattern: an RTP receiver trims nothing. The source
# runs over two loops and the second loop's frames are kept (noise=drop),
# so that the last frame of the clip followed by its first decodes as
# smoothly as the encoder's own continuous output: no click at the loop.
# -fflags +bitexact fixes the Ogg serial number, so a rerun writes the same
# file.
audio() {
	beep() { # beep RATE LEAD SECONDS: the pattern, LEAD seconds ahead
		echo "aevalsrc=exprs='if(lt(mod(t+$2\,1)\,0.1)\,0.5*sin(2*PI*1000*(t+$2))\,0)':s=$1:d=$3"
	}
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	ffmpeg -hide_banner -loglevel error -y -f lavfi -i "$(beep 16000 0.064 17)" \
		-ac 1 -c:a aac -b:a 32k -f adts "$tmp/beep.aac"
	ffmpeg -hide_banner -loglevel error -y -i "$tmp/beep.aac" \
		-c copy -bsf:a 'noise=drop=not(between(n\,125\,249))' -f adts beep.aac
	ffmpeg -hide_banner -loglevel error -y -f lavfi -i "$(beep 48000 0.0065 9)" \
		-ac 1 -c:a libopus -b:a 24k -frame_duration 20 -application audio -f ogg "$tmp/beep.opus"
	ffmpeg -hide_banner -loglevel error -y -i "$tmp/beep.opus" \
		-c copy -bsf:a 'noise=drop=not(between(n\,200\,399))' -fflags +bitexact -f ogg beep.opus
	ls -l beep.aac beep.opus
}

case $step in
video) video ;;
audio) audio ;;
all) video; audio ;;
*) echo "usage: $0 [video|audio]" >&2; exit 2 ;;
esac
