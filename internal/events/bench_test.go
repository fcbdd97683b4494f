package events

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch/internal/testdb"
)

// BenchmarkFanOut200 publishes events with 200 subscribers on the hub and
// measures, per event, the time from its commit until the last of the 200
// has it: the delivery latency a wall of dashboards sees.
func BenchmarkFanOut200(b *testing.B) {
	const subscribers = 200
	pool := testdb.New(b)
	h := NewHub(pool, HubOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-h.Ready():
	case <-time.After(15 * time.Second):
		b.Fatal("hub not listening")
	}
	subs := make([]*Subscription, subscribers)
	for i := range subs {
		s, err := h.Subscribe(ctx, func(Event) bool { return true }, Position{})
		if err != nil {
			b.Fatal(err)
		}
		subs[i] = s
		defer s.Close()
	}
	var lat []time.Duration
	for b.Loop() {
		var wg sync.WaitGroup
		wg.Add(subscribers)
		for _, s := range subs {
			go func() {
				defer wg.Done()
				<-s.Events() // the only event published in this iteration
			}()
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO events (type, data) VALUES ('bench', '{}')")
			return err
		})
		committed := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		lat = append(lat, time.Since(committed))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
