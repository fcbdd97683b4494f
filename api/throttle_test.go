package api_test

import (
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"gridwatch/auth"
)

// parallel runs n requests at once (released together) and counts their
// statuses.
func parallel(n int, req func(i int) int) map[int]int {
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		count = map[int]int{}
		start = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st := req(i)
			mu.Lock()
			count[st]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return count
}

// TestParallelGuessesAreThrottled: guesses sent at once are counted before
// the slow password check, so the limit holds however many arrive together:
// per account (5) and per address (20).
func TestParallelGuessesAreThrottled(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		user    func(i int) string
		want401 int
	}{
		{"one account", 9, func(int) string { return "zhaoliu" }, 5},
		{"one address, many names", 26, func(i int) string { return fmt.Sprintf("guess%02d", i) }, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAuthEnv(t)
			e.createUser("zhaoliu", "correct horse battery", auth.RoleCommander)
			got := parallel(tt.n, func(i int) int {
				return e.send(e.browser(), "POST", "/api/v1/auth/login", fmt.Sprintf(`{"username":%q,"password":"wrong guess %d"}`, tt.user(i), i), nil).status
			})
			if want := map[int]int{401: tt.want401, 429: tt.n - tt.want401}; !maps.Equal(got, want) {
				t.Errorf("%d parallel wrong passwords: statuses %v, want %v", tt.n, got, want)
			}
			// Locked: the right password waits too, with Retry-After.
			r := e.send(e.browser(), "POST", "/api/v1/auth/login", `{"username":"zhaoliu","password":"correct horse battery"}`, nil)
			if r.status != 429 || r.header.Get("Retry-After") == "" {
				t.Errorf("right password while locked: %d %s, want 429 with Retry-After", r.status, r.body)
			}
			e.clock.Add(31 * time.Second)
			if r := e.send(e.browser(), "POST", "/api/v1/auth/login", `{"username":"zhaoliu","password":"correct horse battery"}`, nil); r.status != 200 {
				t.Errorf("right password after the lock: %d %s, want 200", r.status, r.body)
			}
		})
	}
}

// TestPasswordChangeIsThrottled: guesses of the current password at
// POST /api/v1/me/password count as failed sign-ins (the same counters and
// lock), in parallel too; the lock holds for sign-in as well.
func TestPasswordChangeIsThrottled(t *testing.T) {
	e := newAuthEnv(t)
	e.createUser("sunqi", "correct horse battery", auth.RoleOperator)
	b := e.browser()
	r := e.send(b, "POST", "/api/v1/auth/login", `{"username":"sunqi","password":"correct horse battery"}`, nil)
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	csrf := map[string]string{"X-CSRF-Token": r.json(t)["csrf_token"].(string)}
	change := func(current string) response {
		return e.send(b, "POST", "/api/v1/me/password", fmt.Sprintf(`{"current_password":%q,"new_password":"another long passphrase"}`, current), csrf)
	}
	got := parallel(9, func(i int) int { return change(fmt.Sprintf("guess %d", i)).status })
	if want := map[int]int{401: 5, 429: 4}; !maps.Equal(got, want) {
		t.Errorf("9 parallel wrong current passwords: statuses %v, want %v", got, want)
	}
	if r := change("correct horse battery"); r.status != 429 || r.header.Get("Retry-After") == "" || errCode(r) != "throttled" {
		t.Errorf("right current password while locked: %d %s, want 429 throttled with Retry-After", r.status, r.body)
	}
	if r := e.send(e.browser(), "POST", "/api/v1/auth/login", `{"username":"sunqi","password":"correct horse battery"}`, nil); r.status != 429 {
		t.Errorf("sign-in while the password check is locked: %d, want 429", r.status)
	}
	e.clock.Add(31 * time.Second)
	if r := change("correct horse battery"); r.status != 204 {
		t.Fatalf("right current password after the lock: %d %s, want 204", r.status, r.body)
	}
	// The success starts the account afresh: a new mistake is one of five.
	if r := change("wrong again"); r.status != 401 {
		t.Errorf("a wrong password after a success: %d %s, want 401", r.status, r.body)
	}
}
