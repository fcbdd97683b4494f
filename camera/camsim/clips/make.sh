#!/bin/sh
# Regenerates the H.264 and H.265 Annex-B clips that package camsim embeds.
# Every clip: 25 fps, 4 s (100 frames), an IDR every 25 frames (1 s GOP, no
# scene-cut keyframes), no B-frames (baseline), SPS+PPS repeated before every
# IDR (repeat-headers), x264's version SEI removed (filter_units), one thread
# so the output does not depend on the machine.
# The H.265 clip: the same with x265 (closed GOPs, so every keyframe is an
# IDR; prefix and suffix SEI removed; no thread pools).
# Usage: camera/camsim/clips/make.sh   (needs ffmpeg with libx264 and libx265)
set -eu
cd "$(dirname "$0")"

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
