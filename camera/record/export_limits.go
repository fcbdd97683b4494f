package record

import (
	"time"
)

// ExportLimits bound what exports may cost. Zero values take the defaults.
type ExportLimits struct {
	// MaxRange is the longest range one export covers (default 1 h).
	MaxRange time.Duration
	// MaxPending is how many exports one user may have queued or running
	// at once (default 2); more are refused with a retry hint.
	MaxPending int
	// MaxAge: a finished or failed export older than this is removed, file
	// and row (default 90 days), unless held (see Expire).
	MaxAge time.Duration
	// MinFreeBytes is the margin an export leaves free on the exports' disk
	// beyond its estimated size and those of the exports already queued
	// (default 256 MiB). FreeSpace measures free space (default: statfs).
	MinFreeBytes uint64
	FreeSpace    func(dir string) (uint64, error)
}

// Default export limits.
const (
	DefaultExportMaxRange   = time.Hour
	DefaultExportMaxPending = 2
	DefaultExportMaxAge     = 90 * 24 * time.Hour
	DefaultExportMinFree    = 256 << 20
)

func (l *ExportLimits) defaults() {
	if l.MaxRange <= 0 {
		l.MaxRange = DefaultExportMaxRange
	}
	if l.MaxPending <= 0 {
		l.MaxPending = DefaultExportMaxPending
	}
	if l.MaxAge <= 0 {
		l.MaxAge = DefaultExportMaxAge
	}
	if l.MinFreeBytes == 0 {
		l.MinFreeBytes = DefaultExportMinFree
	}
	if l.FreeSpace == nil {
		l.FreeSpace = statfsFree
	}
}
