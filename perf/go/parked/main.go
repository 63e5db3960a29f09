// parked on Go: the reference for perf/parked.cpp. N goroutines (default
// 1,000,000) check in on a WaitGroup and then block on one channel, all at the
// same time; the resident set is read from /proc/self/statm before the spawns
// and once all have checked in. Run with GOMAXPROCS=1. One line:
//
//	parked runtime=go tasklets=N bytes_per_parked=... rss_parked_kib=... park_ms=... wake_ms=...
//
// Usage: parked_go [N]
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// residentBytes is the process's resident set now, from /proc/self/statm.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		return 0
	}
	return resident * int64(os.Getpagesize())
}

func main() {
	n := 1000000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: parked_go [N > 0]")
			os.Exit(2)
		}
		n = v
	}
	var checkedIn, finished sync.WaitGroup
	checkedIn.Add(n)
	finished.Add(n)
	gate := make(chan struct{})
	before := residentBytes()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			checkedIn.Done()
			<-gate
			finished.Done()
		}()
	}
	checkedIn.Wait()
	t1 := time.Now()
	parked := residentBytes()
	close(gate)
	finished.Wait()
	wake := time.Since(t1)
	fmt.Printf("parked runtime=go tasklets=%d bytes_per_parked=%.0f rss_parked_kib=%d park_ms=%.1f wake_ms=%.1f\n",
		n, float64(parked-before)/float64(n), parked/1024,
		float64(t1.Sub(t0).Nanoseconds())/1e6, float64(wake.Nanoseconds())/1e6)
}
