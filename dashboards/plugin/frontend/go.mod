// This go.mod makes the frontend its own (empty) Go module, so that
// `go vet ./...` and `go test ./...` at the repository root stop here: npm
// installs packages that ship .go files under node_modules (flatted does), and
// Go does not skip a folder named node_modules by itself.
module github.com/apiguard/apiguard/dashboards/plugin/frontend

go 1.22
