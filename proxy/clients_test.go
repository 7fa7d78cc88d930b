package proxy

import "log/slog"

// clientsForTests is clients.Build, set by clients_hook_test.go (package
// proxy_test, which may import proxy/clients): chains built in this
// package's tests with Clients: clientsForTests get the real decoys, bots,
// origins and rate limits, as the binary's do.
var clientsForTests func(Config, *slog.Logger) (ClientChecks, error)

// ClientsForTests lets clients_hook_test.go set clientsForTests.
var ClientsForTests = &clientsForTests
