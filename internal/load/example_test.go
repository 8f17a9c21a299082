package load_test

import (
	"fmt"
	"time"

	"github.com/tcpoll/poll/internal/load"
)

func ExampleParseSources() {
	addrs, err := load.ParseSources("127.0.0.1-127.0.0.3,10.0.0.7")
	if err != nil {
		panic(err)
	}
	fmt.Println(addrs)
	// Output: [127.0.0.1 127.0.0.2 127.0.0.3 10.0.0.7]
}

func ExampleHistogram() {
	var h load.Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	// Each within 0.4% of the exact 500µs, 990µs and 1ms.
	fmt.Println(h.Quantile(0.5).Round(time.Microsecond), h.Quantile(0.99).Round(time.Microsecond), h.Max())
	// Output: 501µs 989µs 1ms
}
