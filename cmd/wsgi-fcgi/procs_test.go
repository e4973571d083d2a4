package main

import "testing"

func TestGatewayProcs(t *testing.T) {
	for _, tc := range []struct{ available, want int }{
		{1, 1}, {2, 1}, {4, 1}, {7, 1}, {8, 2}, {32, 8},
	} {
		if got := gatewayProcs(tc.available); got != tc.want {
			t.Errorf("gatewayProcs(%d) = %d, want %d", tc.available, got, tc.want)
		}
	}
}
