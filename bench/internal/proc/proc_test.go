package proc

import (
	"os"
	"slices"
	"testing"
)

func TestParsePIDs(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"42", []int{42}, false},
		{"42,7", []int{42, 7}, false},
		{" 42 , 7 ", []int{42, 7}, false},
		{"", nil, true},
		{"42,", nil, true},
		{"0", nil, true},
		{"-1", nil, true},
		{"x", nil, true},
	} {
		got, err := ParsePIDs(tc.in)
		if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
			t.Errorf("ParsePIDs(%q) = %v, %v; want %v, an error: %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestCPUSum(t *testing.T) {
	one, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	two, err := CPUSum([]int{os.Getpid(), os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	// The process runs between the readings: its time only grows.
	if two < 2*one {
		t.Errorf("CPUSum of this process twice = %v, want at least twice %v", two, one)
	}
	if _, err := CPUSum([]int{os.Getpid(), 1 << 30}); err == nil {
		t.Error("CPUSum with a process that does not exist: no error")
	}
}
