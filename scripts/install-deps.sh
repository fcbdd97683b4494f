#!/bin/sh
# Installs what gridwatch needs to build, run and test, on Debian/Ubuntu:
#   run:  PostgreSQL server + PostGIS 3, Node.js/npm (only when absent)
#   test: also Chromium, ffmpeg (ffprobe), GDAL's ogrinfo/ogr2ogr (an OGC API Features client),
#         QGIS's Python bindings (the GIS client, headless), a CJK font for screenshots,
#         gcc (the race detector) and SeaweedFS (the several-node tests' S3 object store,
#         built from its Go module by scripts/install-weed.sh)
# Usage: scripts/install-deps.sh [run|test]. Elsewhere it says what to install.
set -eu
mode=${1:-run}

have() { command -v "$1" >/dev/null 2>&1; }
pg_major() { ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sed 's#/usr/lib/postgresql/\([0-9]*\)/.*#\1#' | sort -n | tail -1; }
postgis_ok() { m=$(pg_major); [ -n "$m" ] && ls /usr/share/postgresql/"$m"/extension/postgis.control >/dev/null 2>&1; }

need=""
postgis_ok || need="$need postgis"
have node && have npm || need="$need node"
if [ "$mode" = test ]; then
	[ -x /usr/bin/chromium ] || need="$need chromium"
	# Tests use ffprobe as an independent RTSP client of the camera simulator.
	have ffprobe || need="$need ffmpeg"
	# Tests read /ogc with GDAL's OAPIF driver, as QGIS does.
	have ogr2ogr || need="$need gdal"
	# ... and load the grids in real QGIS (Debian's, 3.22 LTR) under /usr/bin/python3.
	QT_QPA_PLATFORM=offscreen /usr/bin/python3 -c 'import qgis.core' >/dev/null 2>&1 || need="$need qgis"
	# go test -race needs cgo, so a C compiler.
	have gcc || need="$need gcc"
	# Screenshots of the dashboard show Chinese names: a small CJK font.
	fc-list :lang=zh 2>/dev/null | grep -q . || need="$need fonts"
fi
weed() {
	if [ "$mode" = test ]; then
		"$(dirname "$0")/install-weed.sh" >/dev/null
	fi
}
[ -z "$need" ] && { weed; exit 0; }

if ! have apt-get; then
	echo "gridwatch needs:$need" >&2
	echo "Install PostgreSQL 15+ with PostGIS 3, Node.js 20+ with npm, and (for tests) Chromium at /usr/bin/chromium," >&2
	echo "or set DATABASE_URL to a PostgreSQL server with PostGIS." >&2
	exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	have sudo || { echo "install-deps: need root (or sudo) to install:$need" >&2; exit 1; }
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
apt_install() {
	echo "install-deps: apt-get install $*" >&2
	$SUDO apt-get install -y -q --no-install-recommends "$@" >/dev/null || {
		$SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends "$@" >/dev/null
	}
}
case "$need" in *postgis*)
	[ -n "$(pg_major)" ] || apt_install postgresql
	apt_install "postgresql-$(pg_major)-postgis-3"
	# Debian starts a system cluster on install; gridwatch runs its own and does not need it.
	;;
esac
case "$need" in *node*) apt_install nodejs npm ;; esac
case "$need" in *chromium*) apt_install chromium ;; esac
case "$need" in *ffmpeg*) apt_install ffmpeg ;; esac
case "$need" in *gdal*) apt_install gdal-bin ;; esac
case "$need" in *qgis*) apt_install python3-qgis ;; esac
case "$need" in *fonts*) apt_install fonts-wqy-microhei ;; esac
case "$need" in *gcc*) apt_install gcc libc6-dev ;; esac
if have node && [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
	echo "install-deps: Node.js $(node -v) is older than 20, which the dashboard build and browser tests need; install Node 20+" >&2
	exit 1
fi
postgis_ok || { echo "install-deps: PostGIS still missing after install" >&2; exit 1; }
weed
