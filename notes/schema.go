package notes

import (
	"embed"
	"io/fs"

	"github.com/tenantry/tenantry/provision"
)

//go:embed schema/*.sql
var schemaFS embed.FS

// Schema returns the application's DDL files (*.sql, applied in name order).
func Schema() fs.FS {
	sub, err := fs.Sub(schemaFS, "schema")
	if err != nil {
		panic(err) // the embedded directory exists
	}
	return sub
}

// DDL returns the application's DDL, for provision.Config.DDL.
func DDL() []string {
	ddl, err := provision.ReadDDL(Schema())
	if err != nil {
		panic(err) // the embedded files exist
	}
	return ddl
}
