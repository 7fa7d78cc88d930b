package inspect

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/apiguard/apiguard/internal/testutil/checktest"
	"github.com/apiguard/apiguard/internal/testutil/events"
)

// TestMain fails the package if a test leaves a goroutine running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// collector keeps the events a proxy emits.
type collector = events.Collector

// exchangeFor is a request as a check sees it (checktest.Exchange).
var exchangeFor = checktest.Exchange
