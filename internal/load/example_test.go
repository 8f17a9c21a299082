package load_test

import (
	"fmt"
	"net/netip"
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

func ExampleAppendProxyHeader() {
	src := netip.MustParseAddrPort("192.0.2.7:40000")
	dst := netip.MustParseAddrPort("198.51.100.1:3137")
	fmt.Printf("%q\n", load.AppendProxyHeader(nil, load.ProxyV1, src, dst))
	fmt.Printf("% x\n", load.AppendProxyHeader(nil, load.ProxyV2, src, dst))
	// Output:
	// "PROXY TCP4 192.0.2.7 198.51.100.1 40000 3137\r\n"
	// 0d 0a 0d 0a 00 0d 0a 51 55 49 54 0a 21 11 00 0c c0 00 02 07 c6 33 64 01 9c 40 0c 41
}
