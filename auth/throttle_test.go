package auth

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"gridwatch"
	"gridwatch/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// TestAttemptCountsBeforeTheCheck: attempts are counted as they arrive, in
// one statement each, so N at once pass exactly the limit and the rest are
// refused with the wait; a success gives the address its attempt back.
func TestAttemptCountsBeforeTheCheck(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	s := NewService(testdb.New(t), Options{Hash: HashParams{MemoryKiB: 1024, Time: 1, Threads: 1}, Now: func() time.Time { return now }})
	tests := []struct {
		name      string
		n         int
		keys      func(i int) []string
		wantPass  int
		wantLocks bool
	}{
		{"one account", 9, func(int) []string { return throttleKeys("a", "10.0.0.1") }, 5, true},
		{"one address", 30, func(i int) []string { return throttleKeys(fmt.Sprintf("u%d", i), "10.0.0.2") }, 20, true},
		{"under the limits", 4, func(i int) []string { return throttleKeys("b", fmt.Sprintf("10.0.1.%d", i)) }, 4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu             sync.Mutex
				wg             sync.WaitGroup
				passed, waited int
				start          = make(chan struct{})
			)
			for i := range tt.n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, err := s.attempt(ctx, tt.keys(i), now)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						passed++
					case gridwatch.ErrorCode(err) == gridwatch.EThrottled && gridwatch.ErrorDetails(err)["retry_after_seconds"] == 30:
						waited++
					default:
						t.Errorf("attempt: %v, want nil or throttled for 30 s", err)
					}
				}()
			}
			close(start)
			wg.Wait()
			if passed != tt.wantPass || waited != tt.n-tt.wantPass {
				t.Errorf("%d attempts at once: %d passed, %d throttled; want %d and %d", tt.n, passed, waited, tt.wantPass, tt.n-tt.wantPass)
			}
		})
	}
}
