package detectors

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
)

// account returns a signed-in user: its subject is the principal.
func account(name string, i int) who {
	w := member(name, i)
	w.key, w.sub = "", fmt.Sprintf("%s-%03d", name, i)
	return w
}

// orderSessions are signed-in users who list their orders before opening
// one (again before each), and open the checkout page before paying:
// every session of the crowd follows the same steps, at a person's pace.
func orderSessions(seed uint64, n int, from, to time.Duration) []*event.RequestEvent {
	rng := rand.New(rand.NewPCG(seed, 11))
	var out []*event.RequestEvent
	for i := range n {
		w := account("user", i)
		at := from + time.Duration(rng.Int64N(int64(10*time.Minute)))
		for at < to {
			out = append(out, w.event(at, "GET /products", "/products"))
			at += time.Duration(2+rng.IntN(8)) * time.Second
			for range 1 + rng.IntN(2) {
				out = append(out, w.event(at, "GET /orders", "/orders"))
				at += time.Duration(2+rng.IntN(8)) * time.Second
				id := strconv.Itoa(1 + rng.IntN(5000))
				out = append(out, w.event(at, "GET /orders/{id}", "/orders/"+id))
				at += time.Duration(2+rng.IntN(8)) * time.Second
			}
			if rng.IntN(2) == 0 {
				out = append(out, w.event(at, "GET /checkout", "/checkout"))
				at += time.Duration(5+rng.IntN(20)) * time.Second
				ev := w.event(at, "POST /payments", "/payments")
				ev.Status = 201
				out = append(out, ev)
			}
			at += time.Duration(35+rng.IntN(25)) * time.Minute // next visit: a session of its own
		}
	}
	return out
}

func TestSequence(t *testing.T) {
	normal := orderSessions(1, 80, 0, 3*time.Hour)
	t.Run("reading orders by id without listing them is flagged", func(t *testing.T) {
		// Every normal session lists before it opens an order; this
		// account opens others' orders by id (not neighbouring ids, all
		// served), at a person's pace.
		thief := account("thief", 1)
		rng := rand.New(rand.NewPCG(5, 5))
		var bola []*event.RequestEvent
		for i := range 12 {
			id := strconv.Itoa(1 + rng.IntN(5000))
			bola = append(bola, thief.event(2*time.Hour+time.Duration(i)*20*time.Second, "GET /orders/{id}", "/orders/"+id))
		}
		got := by(runAll(newEngine(t, nil), sorted(normal, bola)), SequenceName)
		if !slices.Equal(principals(got), []string{"sub:thief-001"}) {
			t.Fatalf("sequence flagged %v, want the thief alone", principals(got))
		}
		explained(t, got)
		a := got[0]
		for _, want := range []string{"GET /orders/{id} → GET /orders/{id}", "usual before it: GET /orders"} {
			if !strings.Contains(a.Summary, want) {
				t.Errorf("summary %q lacks %q", a.Summary, want)
			}
		}
		if len(a.EventIds) < 2 || a.Deviations[0].Feature != "improbable_transitions" || a.Deviations[0].Observed < 4 {
			t.Errorf("anomaly %v: want the improbable transitions' events and count", a)
		}
	})
	t.Run("paying without the checkout page, again and again, is flagged", func(t *testing.T) {
		carder := account("carder", 1)
		var pays []*event.RequestEvent
		for i := range 8 {
			ev := carder.event(2*time.Hour+time.Duration(i)*37*time.Second, "POST /payments", "/payments")
			ev.Status = 201
			pays = append(pays, ev)
		}
		got := by(runAll(newEngine(t, nil), sorted(normal, pays)), SequenceName)
		if !slices.Equal(principals(got), []string{"sub:carder-001"}) {
			t.Fatalf("sequence flagged %v, want the carder alone", principals(got))
		}
		if !strings.Contains(got[0].Summary, "usual before it: GET /checkout") {
			t.Errorf("summary %q should name the checkout page as the usual step", got[0].Summary)
		}
	})
	t.Run("normal sessions, an odd click and a new visitor are not flagged", func(t *testing.T) {
		// A user who follows a link straight to an order once, then
		// browses as everyone does; a late user listing before get.
		odd := account("odd", 1)
		evs := []*event.RequestEvent{odd.event(2*time.Hour, "GET /orders/{id}", "/orders/77")}
		at := 2*time.Hour + 10*time.Second
		for range 5 {
			evs = append(evs, odd.event(at, "GET /orders", "/orders"), odd.event(at+5*time.Second, "GET /orders/{id}", "/orders/78"))
			at += 20 * time.Second
		}
		if got := by(runAll(newEngine(t, nil), sorted(normal, evs)), SequenceName); len(got) > 0 {
			t.Fatalf("sequence flagged %v: %s", principals(got), got[0].Summary)
		}
	})
	t.Run("nothing is judged before enough principals taught", func(t *testing.T) {
		few := orderSessions(2, 10, 0, 3*time.Hour)
		thief := account("thief", 1)
		var bola []*event.RequestEvent
		for i := range 12 {
			bola = append(bola, thief.event(2*time.Hour+time.Duration(i)*20*time.Second, "GET /orders/{id}", "/orders/"+strconv.Itoa(100+7*i)))
		}
		if got := by(runAll(newEngine(t, nil), sorted(few, bola)), SequenceName); len(got) > 0 {
			t.Fatalf("with 10 principals (min_principals 30) sequence flagged %v", principals(got))
		}
	})
	t.Run("random orders of calls are not a sequence", func(t *testing.T) {
		// The shop crowd calls its APIs in no order: no predecessor is
		// improbable.
		if got := by(runAll(newEngine(t, nil), shop()), SequenceName); len(got) > 0 {
			t.Fatalf("sequence flagged %v on the unordered shop: %s", principals(got), got[0].Summary)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		thief := account("thief", 1)
		var bola []*event.RequestEvent
		for i := range 12 {
			bola = append(bola, thief.event(2*time.Hour+time.Duration(i)*20*time.Second, "GET /orders/{id}", "/orders/"+strconv.Itoa(100+7*i)))
		}
		e := newEngine(t, func(c *Config) { c.Disable = []string{SequenceName} })
		if got := by(runAll(e, sorted(normal, bola)), SequenceName); len(got) > 0 {
			t.Fatalf("a disabled detector flagged %v", principals(got))
		}
	})
}

// TestSequenceSessionStart: a principal's first request after SessionGap
// of silence comes from the start of a session, not from the API it left
// off at, so a user who pays on return after the checkout page the day
// before is judged on start → payment.
func TestSequenceSessionStart(t *testing.T) {
	e := newEngine(t, nil)
	// The inventory first (five clients served every API), so every
	// step of the crowd is taught from a numbered API.
	var warm []*event.RequestEvent
	for i := range 5 {
		w := account("warm", i)
		for j, api := range []string{"GET /products", "GET /orders", "GET /orders/{id}", "GET /checkout", "POST /payments"} {
			warm = append(warm, w.event(time.Duration(j)*time.Second, api, strings.Replace(strings.Fields(api)[1], "{id}", "1", 1)))
		}
	}
	runAll(e, sorted(warm))
	runAll(e, sorted(orderSessions(1, 40, 10*time.Second, 2*time.Hour)))
	u := account("user", 1)
	tb := e.st.Seq.Tables[hashUint(uint64(e.st.Seq.index["GET /products"]), hashStrings(event.KindSub))]
	if tb == nil || tb.share(seqStart, false) < 0.5 {
		t.Fatalf("GET /products table %+v: want sessions to start there", tb)
	}
	orders := e.st.Seq.Tables[hashUint(uint64(e.st.Seq.index["GET /orders"]), hashStrings(event.KindSub))]
	before := orders.share(seqStart, false)
	e.Observe(u.event(110*time.Minute, "GET /products", "/products"))
	e.Observe(u.event(150*time.Minute, "GET /orders", "/orders"))
	// Sessions of this crowd never start at GET /orders: the step is
	// improbable, the principal's suspect entry records it, and it is
	// taught (the principal's own teaching is left out when it is judged).
	pk := hashStrings(event.KindSub, u.sub)
	sus := e.st.Seq.Suspects[pk]
	if sus == nil || sus.From[len(sus.From)-1] != seqStart {
		t.Fatalf("suspect entry %+v, want the start of a session → GET /orders (share %.4f)", sus, before)
	}
	if after := orders.share(seqStart, false); after <= before {
		t.Errorf("start-of-session share of GET /orders %.4f → %.4f, want it taught", before, after)
	}
	// Idle for idle_after, the entry is dropped.
	e.Observe(member("late", 1).event(150*time.Minute+2*time.Hour, "GET /late", "/late"))
	if _, ok := e.st.Seq.Suspects[pk]; ok {
		t.Error("the idle suspect entry was kept")
	}
	e.Observe(u.event(150*time.Minute+2*time.Hour+time.Second, "GET /orders", "/orders"))
	p := e.st.Principals[hashStrings(event.KindSub, u.sub)]
	if p.Seq&seqIndexMask != e.st.Seq.index["GET /orders"] {
		t.Errorf("last API index %d, want GET /orders's %d", p.Seq&seqIndexMask, e.st.Seq.index["GET /orders"])
	}
}

// TestSequenceCheckpoint: a run restored from a checkpoint in the middle
// of the thief's reads reports what an unbroken run reports, and ends in
// the same state.
func TestSequenceCheckpoint(t *testing.T) {
	thief := account("thief", 1)
	var bola []*event.RequestEvent
	for i := range 12 {
		bola = append(bola, thief.event(2*time.Hour+time.Duration(i)*20*time.Second, "GET /orders/{id}", "/orders/"+strconv.Itoa(100+7*i)))
	}
	evs := sorted(orderSessions(1, 80, 0, 3*time.Hour), bola)
	whole := newEngine(t, nil)
	all := runAll(whole, evs)
	if len(by(all, SequenceName)) == 0 {
		t.Fatal("no sequence anomaly in the unbroken run")
	}
	cut := slices.IndexFunc(evs, func(ev *event.RequestEvent) bool { return ev.Subject == thief.sub }) + 2
	first := newEngine(t, nil)
	before := runAll(first, evs[:cut])
	state, err := first.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	restarted := newEngine(t, nil)
	if err := restarted.UnmarshalState(state); err != nil {
		t.Fatal(err)
	}
	after := runAll(restarted, evs[cut:])
	if !bytes.Equal(encodeAll(t, append(before, after...)), encodeAll(t, all)) {
		t.Fatal("anomalies after the restore differ from an unbroken run's")
	}
	a, _ := whole.MarshalState()
	b, _ := restarted.MarshalState()
	if !bytes.Equal(a, b) {
		t.Fatal("final state differs from an unbroken run's")
	}
}

// TestSequenceTableBounded: an API reached from many predecessors keeps
// seqTop of them and pools the rest, and a pooled predecessor's share is
// the pool's, so it is never improbable while the pool is large.
func TestSequenceTableBounded(t *testing.T) {
	var tb seqTable
	for i := range 5000 {
		tb.teach(uint16(1+i%40), 1)
	}
	if tb.Other < tb.Total/2 {
		t.Errorf("pool %.0f of %.0f, want most of 40 even predecessors pooled", tb.Other, tb.Total)
	}
	if s := tb.share(999, false); s < 0.5 {
		t.Errorf("share of an unnamed predecessor %.3f, want the pool's", s)
	}
	var one seqTable
	for range 500 {
		one.teach(7, 1)
	}
	if s := one.share(3, false); s > 0.01 {
		t.Errorf("share of a predecessor never seen before an API always reached from 7: %.4f, want < 1%%", s)
	}
}

func TestSequenceConfigValidate(t *testing.T) {
	for _, c := range []struct {
		mod  func(*SequenceConfig)
		want string
	}{
		{func(c *SequenceConfig) { c.MinPrincipals = 1 }, "detectors.sequence.min_principals"},
		{func(c *SequenceConfig) { c.MaxShare = 0 }, "detectors.sequence.max_share"},
		{func(c *SequenceConfig) { c.Floor = 1 }, "detectors.sequence.floor"},
		{func(c *SequenceConfig) { c.MinImprobable = 1 }, "detectors.sequence.min_improbable"},
		{func(c *SequenceConfig) { c.SessionGap = 0 }, "detectors.sequence.session_gap"},
		{func(c *SequenceConfig) { c.Kinds = []string{"cookie"} }, "detectors.sequence.kinds[0]"},
	} {
		cfg := DefaultConfig()
		c.mod(&cfg.Sequence)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate = %v, want an error naming %s", err, c.want)
		}
	}
}

// TestSequenceTwoClients: a user's two devices at once, their requests
// interleaved, are two sessions, not one sequence of odd steps.
func TestSequenceTwoClients(t *testing.T) {
	normal := orderSessions(1, 80, 0, 3*time.Hour)
	laptop, phone := account("both", 1), account("both", 1)
	phone.ip, phone.ua, phone.hdr = "198.51.100.7", "okhttp/4.12.0", "h1:app"
	var evs []*event.RequestEvent
	at := 2 * time.Hour
	for range 6 {
		evs = append(evs, laptop.event(at, "GET /orders", "/orders"), phone.event(at+2*time.Second, "GET /orders", "/orders"),
			laptop.event(at+4*time.Second, "GET /orders/{id}", "/orders/5"), phone.event(at+6*time.Second, "GET /orders/{id}", "/orders/6"))
		at += 30 * time.Second
	}
	if got := by(runAll(newEngine(t, nil), sorted(normal, evs)), SequenceName); len(got) > 0 {
		t.Fatalf("sequence flagged %v: %s", principals(got), got[0].Summary)
	}
	// The same steps from one client are improbable: list → list and
	// get → get never happen in these sessions.
	var one []*event.RequestEvent
	at = 2 * time.Hour
	for range 6 {
		one = append(one, laptop.event(at, "GET /orders", "/orders"), laptop.event(at+2*time.Second, "GET /orders", "/orders"),
			laptop.event(at+4*time.Second, "GET /orders/{id}", "/orders/5"), laptop.event(at+6*time.Second, "GET /orders/{id}", "/orders/6"))
		at += 30 * time.Second
	}
	if got := by(runAll(newEngine(t, nil), sorted(normal, one)), SequenceName); len(got) == 0 {
		t.Fatal("the same steps from one client were not flagged")
	}
}
