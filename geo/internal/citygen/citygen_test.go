package citygen

import (
	"fmt"
	"testing"
)

func TestDemoChineseNumber(t *testing.T) {
	tests := []struct {
		n    int
		want string
	}{
		{0, "0"}, {1, "一"}, {9, "九"}, {10, "十"}, {11, "十一"}, {20, "二十"}, {35, "三十五"},
		{100, "一百"}, {105, "一百零五"}, {110, "一百一十"}, {999, "九百九十九"}, {1000, "1000"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			if got := chineseNumber(tt.n); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
