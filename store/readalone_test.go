package store

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
)

// readAlone is what the stock sqlite3 reader checks fall back to under
// Wine, where no Windows sqlite3 CLI exists: SQLite's own default VFS (not
// the store's shim) reading the database file alone (immutable=1). It is
// the same SQLite library as the store's, so the check is weaker than the
// CLI's, and it says so. Output as the CLI prints it: columns joined by
// '|', one line per row.
func readAlone(t *testing.T, path, query string) string {
	t.Helper()
	t.Logf("LOUD: under Wine: no stock sqlite3 CLI; %s read through SQLite's default VFS instead", path)
	db, err := sql.Open("sqlite3", FileURI(path, "immutable=1&mode=ro"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var lines []string
	for _, q := range strings.Split(query, ";") {
		if strings.TrimSpace(q) == "" {
			continue
		}
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			parts := make([]string, len(vals))
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				parts[i] = fmt.Sprint(v)
			}
			lines = append(lines, strings.Join(parts, "|"))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return strings.Join(lines, "\n")
}
