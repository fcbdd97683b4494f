package basedata

import (
	"os"
	"testing"

	"gridwatch/internal/testdb"
)

// TestMain runs the package's tests (people's and places') against the
// shared test cluster.
func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }
