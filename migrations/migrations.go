// Package migrations embeds gridwatch's numbered SQL migrations. Each file is
// NNNN_name.sql and runs in its own transaction; internal/database applies
// them and records each in schema_migrations.
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed *.sql
var files embed.FS

// FS returns the migration files.
func FS() fs.FS { return files }
