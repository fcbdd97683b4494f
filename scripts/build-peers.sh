#!/usr/bin/env bash
# Builds gridwatch's two peers for make bench-peers, go2rtc and MediaMTX,
# from source snapshots kept outside this repository.
#
# Usage: scripts/build-peers.sh SRC OUT
#   SRC  holds go2rtc/ and mediamtx/, each a git work tree or a git directory
#        without one (what the search tool's fetch leaves in
#        /work/.mirror/OWNER+NAME/repo: a link to it, or to its parent, will do)
#   OUT  gets go2rtc and mediamtx, and NAME.commit beside each: the commit it
#        was built from, "-dirty" after it when the work tree had changes
# A peer whose OUT/NAME.commit already names the source's commit (a clean
# one) is not built again. SRC is never written to: each peer is built in a
# temporary copy (a clone of a git directory, a copy of a work tree, changes
# and all). GO picks the go command (go).
set -eu

usage() { echo "usage: $0 SRC OUT" >&2; exit 2; }
die() { echo "build-peers: $*" >&2; exit 1; }
[ $# -eq 2 ] || usage
src=$1 out=$2
go=${GO:-go}
command -v git >/dev/null 2>&1 || die "git not found (apt-get install git)"
command -v "$go" >/dev/null 2>&1 || die "$go not found"
[ -d "$src" ] || die "$src: not found: the folder with go2rtc/ and mediamtx/ (set PEERS_SRC)"
mkdir -p "$out"
out=$(cd "$out" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/build-peers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# build NAME REPO: builds SRC/NAME into OUT/NAME.
build() {
	name=$1 repo=$2
	dir=$src/$name
	[ -e "$dir" ] || die "$dir: not found: fetch github:$repo with the search tool's fetch (it lands in /work/.mirror/${repo%%/*}+${repo#*/}/repo) and link it there, clone it there, or set PEERS_SRC"
	# The fetch layout one level up: OWNER+NAME/repo.
	if ! git -C "$dir" rev-parse --git-dir >/dev/null 2>&1 && [ -d "$dir/repo" ]; then
		dir=$dir/repo
	fi
	real=$(cd "$dir" && pwd -P) || die "$dir: not a folder"
	if [ "$(git -C "$real" rev-parse --is-inside-work-tree 2>/dev/null)" = true ] &&
		[ "$(git -C "$real" rev-parse --show-toplevel)" = "$real" ]; then
		kind="work tree"
	elif [ "$(git -C "$real" rev-parse --is-inside-git-dir 2>/dev/null)" = true ] &&
		[ "$(git -C "$real" rev-parse --absolute-git-dir)" = "$real" ]; then
		kind="git directory"
	else
		die "$dir: neither a git work tree nor a git directory of $repo (git says: $(git -C "$real" rev-parse --git-dir 2>&1 | tail -1))"
	fi
	commit=$(git -C "$real" rev-parse --verify -q 'HEAD^{commit}') || die "$dir: no commit checked out (HEAD)"
	short=$(git -C "$real" rev-parse --short "$commit")
	if [ "$kind" = "work tree" ] && [ -n "$(git -C "$real" status --porcelain)" ]; then
		commit=$commit-dirty short=$short-dirty
	fi
	case $commit in
	*-dirty) ;;
	*)
		if [ -x "$out/$name" ] && [ "$(cat "$out/$name.commit" 2>/dev/null)" = "$commit" ]; then
			echo "$name: up to date ($short) in $out"
			return
		fi
		;;
	esac

	echo "$name: building $short from $dir ($kind)"
	work=$tmp/$name
	if [ "$kind" = "git directory" ]; then
		git clone -q --no-checkout "$real" "$work" || die "$dir: git clone failed"
		git -C "$work" checkout -q --detach "$commit" || die "$dir: checking out $commit failed"
	else
		# The files as they are, changes included; not .git, which go
		# build's VCS stamping would otherwise write to (the index).
		mkdir -p "$work"
		(cd "$real" && tar --exclude=./.git -cf - .) | (cd "$work" && tar -xf -) || die "$dir: copying the work tree failed"
	fi
	if [ "$name" = mediamtx ]; then
		# Its build go:embeds two files that go generate would make: the
		# HLS player (HLS is not benchmarked: an empty placeholder) and
		# the version.
		[ -d "$work/internal/servers/hls" ] && [ -d "$work/internal/core" ] ||
			die "$dir: no internal/servers/hls or internal/core at $short: the build recipe in scripts/build-peers.sh needs updating for this MediaMTX"
		touch "$work/internal/servers/hls/hls.min.js"
		echo "v0.0.0-$short" >"$work/internal/core/VERSION"
	fi
	start=$(date +%s)
	(cd "$work" && GOWORK=off "$go" build -buildvcs=false -o "$out/$name.new" .) || die "$name: go build failed in $work (from $dir at $short)"
	mv -f "$out/$name.new" "$out/$name"
	echo "$commit" >"$out/$name.commit"
	echo "$name: built $out/$name in $(($(date +%s) - start)) s"
	rm -rf "$work"
}

build go2rtc AlexxIT/go2rtc
build mediamtx bluenviron/mediamtx
