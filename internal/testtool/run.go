package testtool

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Run starts run (a component's Run) in a goroutine with a context of its
// own and returns stop, which cancels that context and waits for run to
// return: the test fails if run returns an error, or has not returned
// within wait (its goroutines would outlive the test). Calling stop again
// does nothing; tests usually hand it to t.Cleanup as well.
func Run(tb testing.TB, wait time.Duration, run func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			tb.Helper()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("Run: %v", err)
				}
			case <-time.After(wait):
				tb.Fatalf("Run did not return %v after cancel", wait)
			}
		})
	}
}
