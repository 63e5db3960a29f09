// Go reference figures for the micro-benchmarks in perf/*_bench.cpp: the same
// work on goroutines, measured with testing.Benchmark. Run with GOMAXPROCS=1.
// Prints one line per benchmark, median of the given repetitions:
//
//	go name=<benchmark> ns_per_op=<median>
//
// Usage: go_reference [repetitions [benchtime]]   (default 5 and 1s; benchtime
// is the minimum time of one repetition, as go test's -benchtime)
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// Gosched round trip: a partner goroutine does nothing but yield back.
func yieldRoundTrip(b *testing.B) {
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		for !stop.Load() {
			runtime.Gosched()
		}
		close(done)
	}()
	runtime.Gosched()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runtime.Gosched()
	}
	b.StopTimer()
	stop.Store(true)
	<-done
}

// spawn + wait for an empty goroutine.
func spawnJoin(b *testing.B) {
	var wg sync.WaitGroup
	for i := 0; i < b.N; i++ {
		wg.Add(1)
		go wg.Done()
		wg.Wait()
	}
}

// ping-pong over two unbuffered channels.
func channelPingPong(b *testing.B) {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	for i := 0; i < b.N; i++ {
		ping <- i
		<-pong
	}
	close(ping)
}

// lock; yield; unlock; yield in two goroutines, as mutex_bench.cpp does.
func mutexHandOff(b *testing.B) {
	var m sync.Mutex
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		for !stop.Load() {
			m.Lock()
			runtime.Gosched()
			m.Unlock()
			runtime.Gosched()
		}
		close(done)
	}()
	for i := 0; i < b.N; i++ {
		m.Lock()
		runtime.Gosched()
		m.Unlock()
		runtime.Gosched()
	}
	b.StopTimer()
	stop.Store(true)
	<-done
}

func main() {
	reps := 5
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: go_reference [repetitions [benchtime]]")
			os.Exit(2)
		}
		reps = v
	}
	testing.Init() // registers -test.benchtime, which testing.Benchmark reads
	if len(os.Args) > 2 {
		if err := flag.Set("test.benchtime", os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "go_reference: bad benchtime:", err)
			os.Exit(2)
		}
	}
	benches := []struct {
		name string
		fn   func(*testing.B)
	}{
		{"yield_round_trip", yieldRoundTrip},
		{"spawn_join", spawnJoin},
		{"channel_ping_pong", channelPingPong},
		{"mutex_hand_off", mutexHandOff},
	}
	for _, bm := range benches {
		ns := make([]float64, 0, reps)
		for r := 0; r < reps; r++ {
			res := testing.Benchmark(bm.fn)
			ns = append(ns, float64(res.T.Nanoseconds())/float64(res.N))
		}
		sort.Float64s(ns)
		median := ns[len(ns)/2]
		if len(ns)%2 == 0 {
			median = (ns[len(ns)/2-1] + ns[len(ns)/2]) / 2
		}
		fmt.Printf("go name=%s ns_per_op=%.1f\n", bm.name, median)
	}
}
