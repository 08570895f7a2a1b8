package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

// The public API names no internal package's types: package checkpoint,
// lease and journal are implementation (device.FS is the documented
// filesystem seam, and mattn's types are the driver's own).
func TestAPI_NoInternalTypes(t *testing.T) {
	internal := map[string]bool{"checkpoint": true, "lease": true, "journal": true}
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	check := func(where string, e ast.Expr) {
		ast.Inspect(e, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && internal[id.Name] {
					t.Errorf("%s: exported API uses %s.%s", where, id.Name, sel.Sel.Name)
				}
			}
			return true
		})
	}
	checkFields := func(where string, fl *ast.FieldList, exportedOnly bool) {
		if fl == nil {
			return
		}
		for _, f := range fl.List {
			if exportedOnly && (len(f.Names) == 0 || !f.Names[0].IsExported()) {
				continue
			}
			check(where, f.Type)
		}
	}
	for _, pkg := range pkgs {
		for _, file := range pkg.Files {
			for _, d := range file.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if !d.Name.IsExported() {
						continue
					}
					if d.Recv != nil {
						if id, ok := ast.Unparen(recvType(d.Recv.List[0].Type)).(*ast.Ident); ok && !id.IsExported() {
							continue
						}
					}
					checkFields(d.Name.Name, d.Type.Params, false)
					checkFields(d.Name.Name, d.Type.Results, false)
				case *ast.GenDecl:
					for _, sp := range d.Specs {
						switch sp := sp.(type) {
						case *ast.TypeSpec:
							if !sp.Name.IsExported() {
								continue
							}
							if st, ok := sp.Type.(*ast.StructType); ok {
								checkFields(sp.Name.Name, st.Fields, true)
							} else {
								check(sp.Name.Name, sp.Type)
							}
						case *ast.ValueSpec:
							if sp.Names[0].IsExported() && sp.Type != nil {
								check(sp.Names[0].Name, sp.Type)
							}
						}
					}
				}
			}
		}
	}
}

func recvType(e ast.Expr) ast.Expr {
	if s, ok := e.(*ast.StarExpr); ok {
		return s.X
	}
	return e
}
