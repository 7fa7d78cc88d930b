package proxy_test

import (
	"github.com/apiguard/apiguard/proxy"
	"github.com/apiguard/apiguard/proxy/clients"
)

// The package's tests build chains with the real client checks; proxy
// cannot import proxy/clients, its test binary can.
func init() { *proxy.ClientsForTests = clients.Build }
