// skynet on Go: the reference for skynet_corelet and skynet_boost_fiber.
//
// Each goroutine with size > 1 starts 10 children over equal parts of its range
// and receives their sums from a channel; a leaf sends its ordinal. Run with
// GOMAXPROCS=1 to compare with the single-threaded runtimes. Prints the same
// line as the C++ programs:
//
//	skynet runtime=go size=... sum=... time_ms=... cpu_ms=... peak_rss_kib=...
//
// Usage: skynet_go [size]   (size a power of 10, default 1000000)
package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

const div = 10

func skynet(out chan<- int64, num, size int64) {
	if size == 1 {
		out <- num
		return
	}
	part := size / div
	kids := make(chan int64, div)
	for i := int64(0); i < div; i++ {
		go skynet(kids, num+i*part, part)
	}
	var sum int64
	for i := 0; i < div; i++ {
		sum += <-kids
	}
	out <- sum
}

// cpuMs is the user + system CPU time of the process so far (all threads), ms.
func cpuMs() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}

func main() {
	size := int64(1000000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: skynet_go [size]")
			os.Exit(2)
		}
		size = v
	}
	cpu0 := cpuMs()
	start := time.Now()
	out := make(chan int64)
	go skynet(out, 0, size)
	sum := <-out
	elapsed := time.Since(start)
	cpu := cpuMs() - cpu0
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("skynet runtime=go size=%d sum=%d time_ms=%.1f cpu_ms=%.1f peak_rss_kib=%d\n",
		size, sum, float64(elapsed.Nanoseconds())/1e6, cpu, ru.Maxrss)
	if sum != size*(size-1)/2 {
		fmt.Fprintf(os.Stderr, "skynet_go: wrong sum %d, expected %d\n", sum, size*(size-1)/2)
		os.Exit(1)
	}
}
